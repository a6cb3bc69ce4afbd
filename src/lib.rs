//! hearth: the engine, CLI verbs and model store.

pub mod store;
