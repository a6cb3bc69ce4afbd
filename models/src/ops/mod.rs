//! Operations shared by every architecture: normalisation, rotary embeddings, attention and
//! matrix multiplication over quantized weights.

pub mod attention;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod rope;
