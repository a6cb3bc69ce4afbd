//! Printing a generation to the terminal: the answer on stdout, a reasoning model's thinking
//! shown dimmed (or plain, between `<think>` tags, when piped), hidden behind a one-line
//! indicator, or not asked for; and the statistics line.

use std::io::{IsTerminal, Write};

use crate::chat::prompt::ThinkMode;
use crate::chat::reasoning::Channel;
use crate::engine::{CloseReason, Engine, Event, GenStats, StopReason};

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Streams one answer's events to stdout (and the hidden-thinking indicator to stderr).
pub struct Printer {
    think: ThinkMode,
    tty: bool,
    err_tty: bool,
    /// Inside the thinking, as printed so far.
    in_reasoning: bool,
    /// Thinking tokens seen while hidden (pieces of text, as a proxy shown to the user).
    hidden_pieces: usize,
    /// The first write error (a closed pipe ends the output quietly).
    error: Option<std::io::Error>,
    /// Something was printed (so a closing newline is due).
    printed: bool,
    /// End the answer with a newline even when stdout is not a terminal.
    newline: bool,
}

impl Printer {
    /// `newline`: end each answer with a line break even when piped (a chat's turns); without
    /// it piped output is exactly the generated text.
    pub fn new(think: ThinkMode, newline: bool) -> Printer {
        Printer {
            newline,
            think,
            tty: std::io::stdout().is_terminal(),
            err_tty: std::io::stderr().is_terminal(),
            in_reasoning: false,
            hidden_pieces: 0,
            error: None,
            printed: false,
        }
    }

    fn write(&mut self, text: &str) {
        if self.error.is_some() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
            self.error = Some(e);
        }
        self.printed = true;
    }

    fn end_reasoning(&mut self) {
        if !self.in_reasoning {
            return;
        }
        self.in_reasoning = false;
        match self.think {
            ThinkMode::Show if self.tty => self.write(&format!("{RESET}\n\n")),
            ThinkMode::Show => self.write("\n</think>\n\n"),
            _ => {
                if self.err_tty {
                    eprint!("\r\x1b[K");
                } else {
                    eprintln!("(thought for {} tokens)", self.hidden_pieces);
                }
            }
        }
    }

    pub fn event(&mut self, event: Event) {
        match event {
            Event::Text(Channel::Reasoning, text) => {
                if !self.in_reasoning {
                    self.in_reasoning = true;
                    self.hidden_pieces = 0;
                    if self.think == ThinkMode::Show {
                        self.write(if self.tty { DIM } else { "<think>\n" });
                    }
                }
                match self.think {
                    ThinkMode::Show => self.write(text),
                    _ => {
                        self.hidden_pieces += 1;
                        if self.err_tty {
                            eprint!("\r{DIM}thinking… {} tokens{RESET}", self.hidden_pieces);
                        }
                    }
                }
            }
            Event::Text(Channel::Answer, text) => {
                self.end_reasoning();
                self.write(text);
            }
            Event::ReasoningClosed(why) => {
                let what = match why {
                    CloseReason::Budget => "the reasoning budget is spent",
                    CloseReason::Loop => "the thinking keeps repeating itself",
                };
                if self.err_tty && self.in_reasoning && self.think != ThinkMode::Show {
                    eprint!("\r\x1b[K");
                }
                eprintln!("\nhearth: {what}; asking the model to answer now");
            }
            Event::Token { .. } => {}
        }
    }

    /// The answer is over: close what is open, end the line. A closed pipe is not an error.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.end_reasoning();
        if self.printed && (self.tty || self.newline) {
            self.write("\n");
        }
        match self.error.take() {
            Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(anyhow::Error::new(e).context("writing to standard output"))
            }
            _ => Ok(()),
        }
    }
}

/// The statistics line after an answer (to stderr).
pub fn stats_line(engine: &Engine, stats: &GenStats) -> String {
    let rate = |n: usize, t: std::time::Duration| n as f64 / t.as_secs_f64().max(1e-9);
    let reasoning = if stats.reasoning_tokens > 0 {
        format!(" ({} thinking)", stats.reasoning_tokens)
    } else {
        String::new()
    };
    format!(
        "prompt {} tokens ({} reused, {} evaluated, {:.1} t/s) | generation {} tokens{reasoning}, {:.1} t/s | {} threads, kernels {}",
        stats.prompt_tokens,
        stats.prompt_reused,
        stats.prompt_evaluated(),
        rate(stats.prompt_evaluated(), stats.prompt_time),
        stats.gen_tokens,
        rate(stats.gen_tokens, stats.gen_time),
        engine.threads(),
        hearth_simd::kernel_set(),
    )
}

/// Why an answer ended, when the user should know.
pub fn stop_notice(engine: &Engine, stats: &GenStats) -> Option<String> {
    match stats.stop {
        StopReason::Context => Some(format!(
            "stopped: the context is full ({} tokens)",
            engine.n_ctx
        )),
        StopReason::Length => Some("stopped: the token limit was reached".to_string()),
        StopReason::Cancelled => Some("stopped".to_string()),
        StopReason::Eog | StopReason::StopString => None,
    }
}
