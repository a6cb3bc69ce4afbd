//! `hearth chat -m MODEL`: an interactive multi-turn conversation in the terminal.
//!
//! The KV cache stays across turns, so a new turn evaluates only what changed since the last
//! one (prefix reuse). When the conversation outgrows the context, the oldest turns are dropped.
//! Ctrl-C stops the current answer and keeps the session; Ctrl-D or `/exit` ends it.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::common::{ChatArgs, ModelArgs, SamplingArgs};
use super::output::{stats_line, stop_notice, Printer};
use crate::chat::prompt::{ChatFormat, Prompt, ThinkMode};
use crate::chat::reasoning::Channel;
use crate::chat::template::Message;
use crate::engine::{Engine, Event, GenOptions, GenStats, ReasoningOptions, Session};
use crate::sampler::{Sampler, SamplerParams};

#[derive(Debug, Args)]
pub struct ChatCmdArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub chat: ChatArgs,
    /// Most tokens per answer, thinking included (default: until the model ends its answer).
    #[arg(short = 'n', long)]
    pub max_tokens: Option<usize>,
}

/// Set by Ctrl-C while an answer is being generated.
static CANCEL: AtomicBool = AtomicBool::new(false);

const HELP: &str = "\
/help            this text
/reset           forget the conversation (keeps the system prompt)
/think show|hide|off
                 show the model's thinking, hide it, or skip it
/save FILE       save the conversation as JSON
/load FILE       load a conversation saved with /save (or OpenAI-style messages)
/stats           tokens and speed of each turn, context use
/exit            leave (also Ctrl-D); Ctrl-C stops an answer";

/// One exchange: what the user said, what the model answered (and thought).
#[derive(Clone, Debug)]
struct Turn {
    user: String,
    answer: String,
    reasoning: Option<String>,
}

/// A saved conversation: OpenAI-style messages, with the thinking in `reasoning_content`.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    messages: Vec<SavedMessage>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedMessage {
    role: String,
    content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
}

struct Chat<'e> {
    engine: &'e Engine,
    format: ChatFormat,
    params: SamplerParams,
    think: ThinkMode,
    budget: Option<usize>,
    detect_loops: bool,
    max_tokens: Option<usize>,
    system: Option<String>,
    turns: Vec<Turn>,
    session: Session,
    stats: Vec<GenStats>,
}

impl Chat<'_> {
    fn messages(&self, next_user: Option<&str>) -> Vec<Message> {
        let mut m = Vec::with_capacity(self.turns.len() * 2 + 2);
        if let Some(s) = &self.system {
            m.push(Message::new("system", s));
        }
        for t in &self.turns {
            m.push(Message::new("user", &t.user));
            m.push(Message::new("assistant", &t.answer));
        }
        if let Some(u) = next_user {
            m.push(Message::new("user", u));
        }
        m
    }

    /// The prompt for the next answer, dropping the oldest turns while it leaves too little
    /// room for an answer in the context.
    fn fit_prompt(&mut self, user: &str) -> anyhow::Result<Prompt> {
        let n_ctx = self.engine.n_ctx;
        let room = self.max_tokens.unwrap_or(n_ctx / 4).min(n_ctx / 2).max(1);
        let mut dropped = 0;
        loop {
            let p = self.format.prompt(
                &self.engine.tokenizer,
                &self.messages(Some(user)),
                self.think,
            )?;
            if p.tokens.len() + room <= n_ctx {
                if dropped > 0 {
                    eprintln!(
                        "hearth: the conversation outgrew the context ({n_ctx} tokens); dropped the {dropped} oldest turn{}",
                        if dropped == 1 { "" } else { "s" }
                    );
                }
                return Ok(p);
            }
            if self.turns.is_empty() {
                bail!(
                    "this message needs {} tokens with the system prompt, and the context holds {n_ctx} with {room} kept for the answer (use a larger --ctx-size)",
                    p.tokens.len()
                );
            }
            self.turns.remove(0);
            dropped += 1;
        }
    }

    fn answer(&mut self, user: &str) -> anyhow::Result<()> {
        let prompt = self.fit_prompt(user)?;
        if prompt.folded_system && self.turns.is_empty() {
            eprintln!(
                "hearth: this model works best without a system prompt; it is put in the first user turn"
            );
        }
        let engine = self.engine;
        let mut sampler = Sampler::new(self.params, engine.model.hp.n_vocab)?;
        let reasoning = engine.defaults.reasoning.then_some(ReasoningOptions {
            start: prompt.start,
            budget: self.budget,
            detect_loops: self.detect_loops,
        });
        let opts = GenOptions {
            max_tokens: self.max_tokens,
            stop: &[],
            reasoning,
            cancel: Some(&CANCEL),
            logprobs: None,
        };
        let mut printer = Printer::new(self.think, true);
        let (mut answer, mut thought) = (String::new(), String::new());
        CANCEL.store(false, Ordering::Relaxed);
        let result = engine.generate(
            &mut self.session,
            &prompt.tokens,
            &mut sampler,
            &opts,
            &mut |event| {
                match event {
                    Event::Text(Channel::Answer, t) => answer.push_str(t),
                    Event::Text(Channel::Reasoning, t) => thought.push_str(t),
                    Event::ReasoningClosed(_) | Event::Token { .. } => {}
                }
                printer.event(event)
            },
        );
        printer.finish()?;
        let stats = result?;
        if let Some(notice) = stop_notice(engine, &stats) {
            eprintln!("hearth: {notice}");
        }
        self.turns.push(Turn {
            user: user.to_string(),
            answer,
            reasoning: (!thought.is_empty()).then_some(thought),
        });
        self.stats.push(stats);
        Ok(())
    }

    fn reset(&mut self) {
        self.turns.clear();
        self.session.cache.clear();
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut messages = Vec::new();
        if let Some(s) = &self.system {
            messages.push(SavedMessage {
                role: "system".into(),
                content: s.clone(),
                reasoning_content: None,
            });
        }
        for t in &self.turns {
            messages.push(SavedMessage {
                role: "user".into(),
                content: t.user.clone(),
                reasoning_content: None,
            });
            messages.push(SavedMessage {
                role: "assistant".into(),
                content: t.answer.clone(),
                reasoning_content: t.reasoning.clone(),
            });
        }
        let json = serde_json::to_string_pretty(&Saved { messages })?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// Replace the conversation with a saved one: a system message (optional) then user and
    /// assistant messages in turn.
    fn load(&mut self, path: &Path) -> anyhow::Result<()> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if meta.len() > 64 << 20 {
            bail!(
                "{}: {} bytes is too large for a conversation",
                path.display(),
                meta.len()
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let saved: Saved = match serde_json::from_str::<Saved>(&text) {
            Ok(s) => s,
            Err(_) => Saved {
                messages: serde_json::from_str(&text).with_context(|| {
                    format!("{}: not a conversation saved by /save", path.display())
                })?,
            },
        };
        let mut system = None;
        let mut turns = Vec::new();
        let mut user: Option<String> = None;
        for (i, m) in saved.messages.into_iter().enumerate() {
            match (m.role.as_str(), user.take()) {
                ("system", None) if i == 0 => system = Some(m.content),
                ("user", None) => user = Some(m.content),
                ("assistant", Some(u)) => turns.push(Turn {
                    user: u,
                    answer: m.content,
                    reasoning: m.reasoning_content,
                }),
                (role, _) => bail!(
                    "{}: message {} ({role}) is out of order: expected a system message first, then user and assistant in turn",
                    path.display(),
                    i + 1
                ),
            }
        }
        if user.is_some() {
            bail!("{}: the last user message has no answer", path.display());
        }
        self.system = system;
        self.turns = turns;
        Ok(())
    }

    fn print_stats(&self) {
        for (i, s) in self.stats.iter().enumerate() {
            eprintln!("turn {}: {}", i + 1, stats_line(self.engine, s));
        }
        eprintln!(
            "context: {} of {} tokens in use, {} turn{} in the conversation",
            self.session.cache.len,
            self.engine.n_ctx,
            self.turns.len(),
            if self.turns.len() == 1 { "" } else { "s" }
        );
    }
}

/// Where lines come from: an editor with history on a terminal, plain lines otherwise.
enum Input {
    Editor(Box<rustyline::DefaultEditor>),
    Plain(std::io::StdinLock<'static>),
}

impl Input {
    fn open() -> anyhow::Result<Input> {
        if std::io::stdin().is_terminal() {
            let editor = rustyline::DefaultEditor::new().context("opening the terminal")?;
            Ok(Input::Editor(Box::new(editor)))
        } else {
            Ok(Input::Plain(std::io::stdin().lock()))
        }
    }

    /// The next line; `None` at the end of input (Ctrl-D).
    fn read(&mut self) -> anyhow::Result<Option<String>> {
        match self {
            Input::Editor(ed) => match ed.readline(">>> ") {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = ed.add_history_entry(line.as_str());
                    }
                    Ok(Some(line))
                }
                Err(rustyline::error::ReadlineError::Interrupted) => Ok(Some(String::new())),
                Err(rustyline::error::ReadlineError::Eof) => Ok(None),
                Err(e) => Err(e).context("reading from the terminal"),
            },
            Input::Plain(stdin) => {
                let mut line = String::new();
                if stdin
                    .read_line(&mut line)
                    .context("reading standard input")?
                    == 0
                {
                    return Ok(None);
                }
                Ok(Some(line.trim_end_matches(['\n', '\r']).to_string()))
            }
        }
    }
}

pub fn run(args: ChatCmdArgs) -> anyhow::Result<()> {
    let engine = Engine::load(&args.model.resolve()?, &args.model.load_options())?;
    let params = args.sampling.params(&engine.defaults);
    params.validate()?;
    let format = args.chat.format(&engine)?;
    let mut chat = Chat {
        engine: &engine,
        format,
        params,
        think: args.chat.think_mode(),
        budget: args.chat.reasoning_budget.filter(|&b| b > 0),
        detect_loops: !args.chat.no_loop_check,
        max_tokens: args.max_tokens,
        system: args.chat.system.clone(),
        turns: Vec::new(),
        session: engine.new_session(),
        stats: Vec::new(),
    };
    let mut input = Input::open()?;
    // After the editor, which takes SIGINT for itself when it starts: while a line is edited
    // the terminal is raw and Ctrl-C is a key; while an answer streams it stops the answer.
    ctrlc::set_handler(|| CANCEL.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    eprintln!(
        "hearth chat: {} ({} context, template {}{}); /help for commands, Ctrl-D to leave",
        engine.model.file().paths()[0]
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        engine.n_ctx,
        chat.format.template.name(),
        if engine.defaults.reasoning {
            format!(", thinking {}", chat.think.name())
        } else {
            String::new()
        }
    );
    while let Some(line) = input.read()? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (command, arg) = match line.split_once(char::is_whitespace) {
            Some((c, a)) => (c, a.trim()),
            None => (line, ""),
        };
        let outcome = match command {
            "/help" | "/?" => {
                eprintln!("{HELP}");
                Ok(())
            }
            "/exit" | "/quit" | "/bye" => break,
            "/reset" | "/clear" => {
                chat.reset();
                eprintln!("hearth: conversation cleared");
                Ok(())
            }
            "/think" => match ThinkMode::parse(arg) {
                Some(mode) => {
                    chat.think = mode;
                    eprintln!("hearth: thinking {}", mode.name());
                    Ok(())
                }
                None => Err(anyhow::anyhow!("/think takes show, hide or off")),
            },
            "/save" if !arg.is_empty() => chat.save(Path::new(arg)).map(|()| {
                eprintln!("hearth: saved {} turns to {arg}", chat.turns.len());
            }),
            "/load" if !arg.is_empty() => chat.load(Path::new(arg)).map(|()| {
                eprintln!("hearth: loaded {} turns from {arg}", chat.turns.len());
            }),
            "/save" | "/load" => Err(anyhow::anyhow!("{command} needs a file name")),
            "/stats" => {
                chat.print_stats();
                Ok(())
            }
            c if c.starts_with('/') && !c.contains(char::is_whitespace) && c.len() > 1 => {
                Err(anyhow::anyhow!("unknown command {c} (/help lists them)"))
            }
            _ => chat.answer(line),
        };
        if let Err(e) = outcome {
            eprintln!("error: {e:#}");
        }
        std::io::stderr().flush().ok();
    }
    Ok(())
}
