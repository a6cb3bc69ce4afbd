//! `hearth tokenize -m MODEL [--special] [--json] TEXT`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hearth_models::gguf::GgufFile;
use hearth_models::tokenizer::Tokenizer;

#[derive(Debug, Args)]
pub struct TokenizeArgs {
    /// Path to a GGUF model file (only its vocabulary is read).
    #[arg(short, long)]
    pub model: PathBuf,
    /// Tokenize as a prompt: BOS as the vocabulary wants, special-token text (`<|im_start|>`)
    /// parsed into control tokens. Without it the text is raw: control-token text stays text.
    #[arg(long)]
    pub special: bool,
    /// Print one JSON array of ids on stdout and nothing else.
    #[arg(long)]
    pub json: bool,
    /// The text to tokenize; read from standard input when absent or `-`.
    pub text: Option<String>,
}

pub fn run(args: TokenizeArgs) -> anyhow::Result<()> {
    let text = match args.text.as_deref() {
        Some(t) if t != "-" => t.to_string(),
        _ => {
            let mut buf = String::new();
            std::io::stdin()
                .read_to_string(&mut buf)
                .context("reading the text from standard input")?;
            buf
        }
    };
    let file = GgufFile::open(&args.model)?;
    let tokenizer = Tokenizer::from_gguf(&file)
        .with_context(|| format!("{}: invalid vocabulary", args.model.display()))?;
    let ids = tokenizer.encode(&text, args.special, args.special)?;
    if args.json {
        println!("{}", serde_json::to_string(&ids)?);
        return Ok(());
    }
    for id in ids {
        let piece = tokenizer.token_to_piece(id, true);
        println!("{id:>8} {:?}", String::from_utf8_lossy(&piece));
    }
    Ok(())
}
