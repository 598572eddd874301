//! Dockerfile text → typed stages and instructions, the way BuildKit's Dockerfile
//! frontend (which `docker build` uses) reads it, so that a Dockerfile builds — or
//! fails, with the same message — under berth as under Docker.
//!
//! The parts, in reading order: `directives` (the `# escape=` comments at the top),
//! `lines` (physical lines → logical lines: comments, continuations, heredoc bodies),
//! `syntax` (a logical line → name, flags, arguments), `heredoc` (which words open a
//! heredoc), `flags` (checking `--flags`), `mount` (`RUN --mount`), `instructions`
//! (typing and stage grouping). `lex` is the shell-word lexer the builder uses to
//! expand values when a step runs. Values are kept raw until then.

mod directives;
mod error;
mod flags;
mod heredoc;
mod instructions;
mod lex;
mod lines;
mod messages;
mod model;
mod mount;
mod syntax;

pub use error::ParseError;
pub use lex::Lexer;
pub use model::{
    ArgDecl, CopyArgs, Dockerfile, Healthcheck, Heredoc, Instruction, InstructionKind, MountKind,
    RunMount, ShellOrExec, Stage,
};
pub use mount::MountExpander;

use directives::Directives;
use instructions::Typed;

/// Parses a whole Dockerfile. Errors carry Docker's message and the line at fault.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    if text.is_empty() {
        return Err(ParseError::new(0, "the Dockerfile cannot be empty"));
    }
    let ast = lines::read(text, Directives::new())?;
    instructions::build(ast)
}

/// Parses one instruction, such as an ONBUILD trigger stored in an image config
/// ("RUN echo hi", heredoc bodies on the following lines), with the given escape
/// character. FROM, MAINTAINER and ONBUILD are refused, as they are as triggers.
pub fn parse_instruction(text: &str, escape: char) -> Result<Instruction, ParseError> {
    let ast = lines::read(text, Directives::disabled(escape))?;
    let [raw] = ast.nodes.as_slice() else {
        return Err(ParseError::new(
            0,
            "onbuild trigger should be a single expression",
        ));
    };
    let typed = instructions::type_line(raw).map_err(|m| ParseError::new(raw.start_line, m))?;
    match typed {
        Typed::From(_) => Err(ParseError::new(
            raw.start_line,
            "FROM isn't allowed as an ONBUILD trigger",
        )),
        Typed::Instr(i) => match i.kind {
            InstructionKind::OnBuild(_) => Err(ParseError::new(
                raw.start_line,
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            )),
            InstructionKind::Maintainer(_) => Err(ParseError::new(
                raw.start_line,
                "MAINTAINER isn't allowed as an ONBUILD trigger",
            )),
            _ => Ok(i),
        },
    }
}
