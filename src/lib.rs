//! hearth: the engine, CLI verbs and model store.
