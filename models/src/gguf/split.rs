//! Split models: `name-00001-of-00003.gguf`, as written by llama.cpp's `gguf-split`.
//!
//! Every part is a complete GGUF file. The first holds all the model's metadata; each holds
//! `split.no` (0-based), `split.count`, `split.tensors.count`, and its own share of the
//! tensors. We follow `llama_model_loader`: part names come from the metadata
//! (`llama_split_prefix` / `llama_split_path`: `{prefix}-{no+1:05}-of-{count:05}.gguf`), each
//! part must say it is the part we expected, and the tensor total must match. Unlike
//! llama.cpp, any part may be opened: we find the first from its name.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::error::{GgufError, GgufErrorKind};
use super::reader::ParsedPart;
use super::storage::Storage;
use super::value::Metadata;
use super::{open_part, GgufFile};

pub(crate) const KEY_SPLIT_NO: &str = "split.no";
pub(crate) const KEY_SPLIT_COUNT: &str = "split.count";
pub(crate) const KEY_SPLIT_TENSORS_COUNT: &str = "split.tensors.count";

/// The name of part `no` (0-based) of `count`, as `llama_split_path` writes it.
pub fn split_file_name(prefix: &str, no: u32, count: u32) -> String {
    format!("{prefix}-{:05}-of-{:05}.gguf", u64::from(no) + 1, count)
}

/// `(no, count)` (0-based `no`) if the file name looks like a part of a split model.
pub fn parse_split_name(name: &str) -> Option<(u32, u32)> {
    let stem = name.strip_suffix(".gguf")?;
    let (head, count) = stem.rsplit_once("-of-")?;
    let (_, no) = head.rsplit_once('-')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(no) || !all_digits(count) {
        return None;
    }
    let no: u32 = no.parse().ok()?;
    Some((no.checked_sub(1)?, count.parse().ok()?))
}

fn split_err(path: &Path, msg: String) -> GgufError {
    GgufError::whole(path.display().to_string(), GgufErrorKind::Split(msg))
}

/// `(split.no, split.count)` when the metadata describes a split model of 2 or more parts.
fn split_keys(meta: &Metadata, path: &Path) -> Result<Option<(u32, u32)>, GgufError> {
    let err = |e: super::MetadataError| split_err(path, e.to_string());
    let count = match meta.get_opt_u32(KEY_SPLIT_COUNT).map_err(err)? {
        None | Some(0) | Some(1) => return Ok(None),
        Some(c) => c,
    };
    // gguf-split stores the count as a u16.
    if count > u32::from(u16::MAX) {
        return Err(split_err(
            path,
            format!("{KEY_SPLIT_COUNT} is {count}, more than {}", u16::MAX),
        ));
    }
    let no = meta.get_u32(KEY_SPLIT_NO).map_err(err)?;
    if no >= count {
        return Err(split_err(
            path,
            format!("{KEY_SPLIT_NO} is {no}, but {KEY_SPLIT_COUNT} is {count}"),
        ));
    }
    Ok(Some((no, count)))
}

pub(crate) fn open(path: &Path) -> Result<GgufFile, GgufError> {
    let (storage, parsed) = open_part(path)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some((no, count)) = split_keys(&parsed.metadata, path)? else {
        if let Some((n, c)) = parse_split_name(name).filter(|(_, c)| *c > 1) {
            let msg = format!(
                "the file name says this is part {} of {c} of a split model, but the file has no \
                 {KEY_SPLIT_COUNT} metadata (it was not written by gguf-split?)",
                u64::from(n) + 1
            );
            return Err(split_err(path, msg));
        }
        return Ok(GgufFile::assemble(vec![(
            path.to_path_buf(),
            storage,
            parsed,
        )]));
    };
    let suffix = split_file_name("", no, count);
    let prefix = match name.strip_suffix(&suffix) {
        Some(p) if !p.is_empty() => p,
        _ => {
            let msg = format!(
                "the metadata says this is part {} of {count} of a split model, so its name \
                 should end in `{suffix}`",
                u64::from(no) + 1
            );
            return Err(split_err(path, msg));
        }
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut given = Some((storage, parsed));
    let mut parts = Vec::new();
    for i in 0..count {
        let part_path = dir.join(split_file_name(prefix, i, count));
        let (storage, parsed) = match given.take_if(|_| i == no) {
            Some(p) => p,
            None => open_other_part(&part_path, i, count)?,
        };
        check_part(&parsed, &part_path, i, count)?;
        parts.push((part_path, storage, parsed));
    }
    check_tensors(&parts)?;
    Ok(GgufFile::assemble(parts))
}

/// Opens part `i`; a missing file gets a message that says it is part of a split model.
fn open_other_part(path: &Path, i: u32, count: u32) -> Result<(Storage, ParsedPart), GgufError> {
    open_part(path).map_err(|e| match e.kind() {
        GgufErrorKind::Io(io) => split_err(
            path,
            format!(
                "cannot open part {} of {count} of a split model: {io}",
                u64::from(i) + 1
            ),
        ),
        _ => e,
    })
}

/// Each part must say it is part `i` of `count`.
fn check_part(parsed: &ParsedPart, path: &Path, i: u32, count: u32) -> Result<(), GgufError> {
    let meta = &parsed.metadata;
    let err = |e: super::MetadataError| split_err(path, e.to_string());
    let (no, c) = (
        meta.get_u32(KEY_SPLIT_NO).map_err(err)?,
        meta.get_u32(KEY_SPLIT_COUNT).map_err(err)?,
    );
    if no != i || c != count {
        let msg = format!(
            "expected part {} of {count} of a split model, but its metadata says part {} of {c}",
            u64::from(i) + 1,
            u64::from(no) + 1
        );
        return Err(split_err(path, msg));
    }
    Ok(())
}

/// Tensor names are unique across parts, and the total is what the first part announces.
fn check_tensors(parts: &[(PathBuf, Storage, ParsedPart)]) -> Result<(), GgufError> {
    let mut seen = HashSet::new();
    for (path, _, parsed) in parts {
        for t in &parsed.tensors {
            if !seen.insert(t.name.as_str()) {
                let msg = format!(
                    "tensor `{}` appears in more than one part of the split model",
                    t.name
                );
                return Err(split_err(path, msg));
            }
        }
    }
    let Some((path, _, first)) = parts.first() else {
        return Ok(());
    };
    let announced = first
        .metadata
        .get_opt_u64(KEY_SPLIT_TENSORS_COUNT)
        .map_err(|e| split_err(path, e.to_string()))?;
    match announced {
        Some(n) if n != seen.len() as u64 => Err(split_err(
            path,
            format!(
                "{KEY_SPLIT_TENSORS_COUNT} is {n}, but the parts hold {} tensors",
                seen.len()
            ),
        )),
        _ => Ok(()),
    }
}
