//! hearth: the engine, CLI verbs and model store.

pub mod chat;
pub mod cli;
pub mod cpu;
pub mod engine;
pub mod gpu;
pub mod inspect;
pub mod sampler;
pub mod server;
pub mod store;
pub mod strftime;
