//! The one error type of the Dockerfile parser. Docker prints parse failures as
//! `dockerfile parse error on line N: <what>`; keeping the line apart from the message
//! lets the builder point at the line and still print Docker's text.

use std::fmt;

/// A Dockerfile that Docker would refuse, with Docker's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line of the instruction (or physical line) at fault; 0 when the error
    /// is about the whole file ("file with no instructions").
    pub line: usize,
    /// Docker's wording, without the location prefix ("unknown instruction: FOO").
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(
                f,
                "dockerfile parse error on line {}: {}",
                self.line, self.message
            )
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_like_dockers() {
        assert_eq!(
            ParseError::new(3, "unknown instruction: FOO").to_string(),
            "dockerfile parse error on line 3: unknown instruction: FOO"
        );
        assert_eq!(
            ParseError::new(0, "file with no instructions").to_string(),
            "file with no instructions"
        );
    }
}
