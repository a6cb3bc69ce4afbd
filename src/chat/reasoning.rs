//! Reasoning output (`<think>…</think>`): a streaming parser that splits generated text into
//! the thinking and the answer, and a detector for thinking that goes round in circles.
//!
//! The parser works on text, not token ids, so it handles tags written as one token or split
//! over several, an opening tag written by the template (the R1 distills' prompt ends with
//! `<think>\n`) or by the model, and thinking that never ends.

use std::collections::HashMap;

/// The tag that opens a reasoning span.
pub const OPEN: &str = "<think>";
/// The tag that closes it.
pub const CLOSE: &str = "</think>";

/// Which part of the output a piece of text belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Reasoning,
    Answer,
}

/// Where the output starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The prompt already opened the reasoning (it ends with `<think>`).
    InReasoning,
    /// The model may open a reasoning span with its first words, or answer at once.
    Detect,
    /// No reasoning is expected (it was closed in the prompt): everything is answer.
    InAnswer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the first words: waiting to see whether they open a reasoning span.
    Start,
    /// Inside the reasoning; `started` once its first non-blank text was emitted.
    Reasoning { started: bool },
    /// The answer; `started` once its first non-blank text was emitted.
    Answer { started: bool },
}

/// Splits streamed text into reasoning and answer. Blank text around the tags is dropped (the
/// reasoning and the answer are each trimmed), everything else comes out exactly once, in order.
#[derive(Clone, Debug)]
pub struct ReasoningParser {
    state: State,
    pending: String,
}

impl ReasoningParser {
    pub fn new(start: Start) -> ReasoningParser {
        let state = match start {
            Start::InReasoning => State::Reasoning { started: false },
            Start::Detect => State::Start,
            Start::InAnswer => State::Answer { started: false },
        };
        ReasoningParser {
            state,
            pending: String::new(),
        }
    }

    /// Whether the text so far ends inside a reasoning span (or before it is known).
    pub fn in_reasoning(&self) -> bool {
        !matches!(self.state, State::Answer { .. })
    }

    /// Whether the text so far ends inside an opened reasoning span.
    pub fn thinking(&self) -> bool {
        matches!(self.state, State::Reasoning { .. })
    }

    /// Add generated text; emit what can be classified.
    pub fn push(&mut self, text: &str, emit: &mut dyn FnMut(Channel, &str)) {
        self.pending.push_str(text);
        loop {
            match self.state {
                State::Start => {
                    let blank = self.pending.len() - self.pending.trim_start().len();
                    let rest = &self.pending[blank..];
                    if let Some(after) = rest.strip_prefix(OPEN) {
                        self.pending = after.to_string();
                        self.state = State::Reasoning { started: false };
                    } else if OPEN.starts_with(rest) {
                        return;
                    } else {
                        self.state = State::Answer { started: false };
                    }
                }
                State::Reasoning { started } => {
                    if !started {
                        let blank = self.pending.len() - self.pending.trim_start().len();
                        self.pending.drain(..blank);
                        if self.pending.is_empty() {
                            return;
                        }
                        // A model may repeat the opening tag the template already wrote.
                        if let Some(after) = self.pending.strip_prefix(OPEN) {
                            self.pending = after.to_string();
                            continue;
                        }
                        if OPEN.starts_with(self.pending.as_str()) {
                            return;
                        }
                    }
                    if let Some(at) = self.pending.find(CLOSE) {
                        let thought = self.pending[..at].trim_end();
                        if !thought.is_empty() {
                            emit(Channel::Reasoning, thought);
                        }
                        self.pending.drain(..at + CLOSE.len());
                        self.state = State::Answer { started: false };
                        continue;
                    }
                    // Hold back what may be the start of the closing tag, and trailing blanks
                    // (dropped if the tag follows them).
                    let partial = longest_suffix_prefix(&self.pending, CLOSE);
                    let body = &self.pending[..self.pending.len() - partial];
                    let cut = body.trim_end().len();
                    if cut > 0 {
                        emit(Channel::Reasoning, &self.pending[..cut]);
                        self.pending.drain(..cut);
                        self.state = State::Reasoning { started: true };
                    }
                    return;
                }
                State::Answer { started } => {
                    if !started {
                        let blank = self.pending.len() - self.pending.trim_start().len();
                        self.pending.drain(..blank);
                        if self.pending.is_empty() {
                            return;
                        }
                        self.state = State::Answer { started: true };
                    }
                    emit(Channel::Answer, &self.pending);
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    /// The output ended: emit what was held back (unterminated thinking stays reasoning).
    pub fn finish(&mut self, emit: &mut dyn FnMut(Channel, &str)) {
        let rest = std::mem::take(&mut self.pending);
        match self.state {
            State::Start | State::Answer { .. } => {
                let rest = rest.trim_start();
                if !rest.is_empty() {
                    emit(Channel::Answer, rest);
                }
            }
            State::Reasoning { started } => {
                // Held blanks are kept when text follows them, dropped at either end.
                let rest = if started {
                    rest.trim_end()
                } else {
                    rest.trim()
                };
                if !rest.trim_start().is_empty() {
                    emit(Channel::Reasoning, rest);
                }
            }
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag`, on a char boundary.
pub(crate) fn longest_suffix_prefix(text: &str, tag: &str) -> usize {
    let max = tag.len().saturating_sub(1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && tag
                    .as_bytes()
                    .starts_with(&text.as_bytes()[text.len() - n..])
        })
        .unwrap_or(0)
}

/// Notices thinking that keeps repeating itself: some run of `n` tokens seen `limit` times.
/// Natural reasoning repeats short phrases, rarely a run of 16 tokens four times; a looping
/// model repeats whole paragraphs, and every run in them.
#[derive(Clone, Debug)]
pub struct LoopDetector {
    n: usize,
    limit: u32,
    window: Vec<u32>,
    counts: HashMap<u64, u32>,
}

impl Default for LoopDetector {
    fn default() -> Self {
        LoopDetector::new(16, 4)
    }
}

impl LoopDetector {
    pub fn new(n: usize, limit: u32) -> LoopDetector {
        assert!(n > 0 && limit > 1);
        LoopDetector {
            n,
            limit,
            window: Vec::with_capacity(n),
            counts: HashMap::new(),
        }
    }

    /// Add one token; true when its run of `n` tokens has now been seen `limit` times.
    pub fn push(&mut self, token: u32) -> bool {
        if self.window.len() == self.n {
            self.window.remove(0);
        }
        self.window.push(token);
        if self.window.len() < self.n {
            return false;
        }
        let key = self.window.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &t| {
            (h ^ u64::from(t)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let count = self.counts.entry(key).or_insert(0);
        *count += 1;
        *count >= self.limit
    }

    pub fn reset(&mut self) {
        self.window.clear();
        self.counts.clear();
    }
}

/// Why thinking should be ended by hearth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// It reached its token budget.
    Budget,
    /// It keeps repeating itself.
    Loop,
}

/// Watches the tokens generated inside a reasoning span and says when to end it.
#[derive(Clone, Debug)]
pub struct ThinkingGuard {
    budget: Option<usize>,
    loops: Option<LoopDetector>,
    /// Reasoning tokens seen so far.
    pub tokens: usize,
}

impl ThinkingGuard {
    pub fn new(budget: Option<usize>, detect_loops: bool) -> ThinkingGuard {
        ThinkingGuard {
            budget,
            loops: detect_loops.then(LoopDetector::default),
            tokens: 0,
        }
    }

    /// One generated token, `thinking` if it belongs to the reasoning.
    pub fn push(&mut self, token: u32, thinking: bool) -> Option<CloseReason> {
        if !thinking {
            return None;
        }
        self.tokens += 1;
        if self.budget.is_some_and(|b| self.tokens >= b) {
            return Some(CloseReason::Budget);
        }
        let looped = self.loops.as_mut().is_some_and(|d| d.push(token));
        looped.then_some(CloseReason::Loop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` and returns (reasoning, answer) as emitted, checking that the pieces of
    /// each channel come out in order.
    fn parse(start: Start, pieces: &[&str]) -> (String, String) {
        let mut p = ReasoningParser::new(start);
        let (mut r, mut a) = (String::new(), String::new());
        let mut emit = |c: Channel, t: &str| match c {
            Channel::Reasoning => r.push_str(t),
            Channel::Answer => a.push_str(t),
        };
        for piece in pieces {
            p.push(piece, &mut emit);
        }
        p.finish(&mut emit);
        (r, a)
    }

    fn s(r: &str, a: &str) -> (String, String) {
        (r.to_string(), a.to_string())
    }

    #[test]
    fn opening_tag_written_by_the_model() {
        assert_eq!(
            parse(
                Start::Detect,
                &["<think>", "\nhmm, 2+2", ".\n", "</think>", "\n\n4"]
            ),
            s("hmm, 2+2.", "4")
        );
    }

    #[test]
    fn opening_tag_written_by_the_template() {
        assert_eq!(
            parse(
                Start::InReasoning,
                &["Let me", " think.\n\n", "</think>\n\nYes."]
            ),
            s("Let me think.", "Yes.")
        );
        // A model that writes the tag again after the template's.
        assert_eq!(
            parse(Start::InReasoning, &["\n<th", "ink>\nok", "</think>", "a"]),
            s("ok", "a")
        );
    }

    #[test]
    fn tags_split_across_tokens() {
        assert_eq!(
            parse(
                Start::Detect,
                &[" <", "thi", "nk>", "a <b> c", "</", "thi", "nk", ">", "answer <", "/think>"]
            ),
            s("a <b> c", "answer </think>")
        );
        // Text that looks like the start of the tag but is not.
        assert_eq!(
            parse(Start::InReasoning, &["x </th", "ought> y", "</think>z"]),
            s("x </thought> y", "z")
        );
        // Multi-byte characters next to a partial tag.
        assert_eq!(
            parse(Start::InReasoning, &["été <", "/think>", "ça"]),
            s("été", "ça")
        );
    }

    #[test]
    fn no_reasoning_at_all() {
        assert_eq!(
            parse(Start::Detect, &["Hello", " world"]),
            s("", "Hello world")
        );
        assert_eq!(parse(Start::Detect, &["<", "b>bold"]), s("", "<b>bold"));
        assert_eq!(parse(Start::Detect, &["<thi"]), s("", "<thi"));
        assert_eq!(
            parse(Start::InAnswer, &["<think>x</think>y"]),
            s("", "<think>x</think>y")
        );
    }

    #[test]
    fn unterminated_thinking_stays_reasoning() {
        assert_eq!(
            parse(Start::InReasoning, &["still going\n", "and going </thi"]),
            s("still going\nand going </thi", "")
        );
        let mut p = ReasoningParser::new(Start::InReasoning);
        p.push("x", &mut |_, _| {});
        assert!(p.in_reasoning());
        p.push("</think>", &mut |_, _| {});
        assert!(!p.in_reasoning());
    }

    #[test]
    fn blanks_inside_are_kept_around_are_dropped() {
        assert_eq!(
            parse(
                Start::InReasoning,
                &["\n\na\n\n", "b  ", "\n", "</think>\n\n", " c\n\nd\n"]
            ),
            s("a\n\nb", "c\n\nd\n")
        );
    }

    #[test]
    fn guard_closes_at_the_budget_and_on_loops_only_while_thinking() {
        let mut g = ThinkingGuard::new(Some(3), true);
        assert_eq!(g.push(1, false), None);
        assert_eq!(g.push(2, true), None);
        assert_eq!(g.push(3, true), None);
        assert_eq!(g.push(4, true), Some(CloseReason::Budget));
        assert_eq!(g.tokens, 3);
        let mut g = ThinkingGuard::new(None, true);
        let looped = (0..200)
            .map(|i| i % 20)
            .position(|t| g.push(t, true).is_some());
        // A 20-token paragraph: its first 16-gram is seen the 4th time at 3 * 20 + 15.
        assert_eq!(looped, Some(75));
        let mut g = ThinkingGuard::new(None, false);
        assert!((0..200).all(|i| g.push(i % 20, true).is_none()));
        let mut g = ThinkingGuard::new(Some(1), true);
        assert!((0..50).all(|i| g.push(i, false).is_none()));
    }

    #[test]
    fn loops_are_detected_and_prose_is_not() {
        let mut d = LoopDetector::new(4, 3);
        let block = [1, 2, 3, 4, 5, 6];
        let mut fired_at = None;
        for (i, &t) in block.iter().cycle().take(60).enumerate() {
            if d.push(t) {
                fired_at = Some(i);
                break;
            }
        }
        // The first run of 4 completes at token 3 and again every 6 tokens: the third time at 15.
        assert_eq!(fired_at, Some(15));
        let mut d = LoopDetector::default();
        let prose: Vec<u32> = (0..2000u32).map(|i| (i * 7919) % 1000).collect();
        assert!(!prose.iter().any(|&t| d.push(t)));
    }
}
