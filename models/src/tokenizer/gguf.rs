//! Reading a [`VocabSpec`] from GGUF metadata.

use super::spec::{SpecialIds, VocabSpec};
use super::{Tokenizer, TokenizerError};
use crate::gguf::{GgufFile, Metadata, MetadataError};

impl VocabSpec {
    /// The `tokenizer.ggml.*` keys of a GGUF file. Missing optional keys stay `None`; a key of
    /// the wrong type is an error naming it.
    pub fn from_metadata(md: &Metadata) -> Result<VocabSpec, TokenizerError> {
        let mut special = SpecialIds::default();
        for (key, slot) in SpecialIds::KEYS
            .iter()
            .chain(SpecialIds::DEPRECATED_KEYS.iter())
        {
            if let Some(id) = md.get_opt_u32(key)? {
                *special.slot_mut(*slot) = Some(id);
            }
        }
        Ok(VocabSpec {
            model: md.get_str("tokenizer.ggml.model")?.to_string(),
            pre: md.get_opt_str("tokenizer.ggml.pre")?.map(str::to_string),
            tokens: md.get_str_array("tokenizer.ggml.tokens")?.to_vec(),
            token_types: md
                .get_opt_i32_array("tokenizer.ggml.token_type")?
                .map(<[i32]>::to_vec),
            scores: scores(md)?,
            merges: md
                .get_opt_str_array("tokenizer.ggml.merges")?
                .map(<[String]>::to_vec),
            special,
            add_bos: md.get_opt_bool("tokenizer.ggml.add_bos_token")?,
            add_eos: md.get_opt_bool("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: md.get_opt_bool("tokenizer.ggml.add_space_prefix")?,
            model_name: md.get_opt_str("general.name")?.map(str::to_string),
        })
    }
}

/// `tokenizer.ggml.scores`: f32 as usual, or i32 as llama.cpp also accepts.
fn scores(md: &Metadata) -> Result<Option<Vec<f32>>, TokenizerError> {
    const KEY: &str = "tokenizer.ggml.scores";
    match md.get_opt_f32_array(KEY) {
        Ok(s) => Ok(s.map(<[f32]>::to_vec)),
        Err(MetadataError::WrongType { .. }) if md.get_i32_array(KEY).is_ok() => {
            let ints = md.get_i32_array(KEY)?;
            Ok(Some(ints.iter().map(|&i| i as f32).collect()))
        }
        Err(e) => Err(e.into()),
    }
}

impl Tokenizer {
    /// The tokenizer of a GGUF file's metadata.
    pub fn from_metadata(md: &Metadata) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_spec(VocabSpec::from_metadata(md)?)
    }

    /// The tokenizer of a GGUF file.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_metadata(file.metadata())
    }
}
