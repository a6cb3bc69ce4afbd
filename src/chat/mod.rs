//! Chat: templates rendered from the GGUF, injection-safe prompt assembly, and the reasoning
//! (`<think>…</think>`) handling shared by `hearth run`, `hearth chat` and the server.

pub mod defaults;
pub mod prompt;
pub mod reasoning;
pub mod template;
