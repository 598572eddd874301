//! The parser, the lexer and the trigger parser never panic, whatever the input:
//! arbitrary text, and text made of Dockerfile-shaped pieces that reach deeper.

use berth_build::dockerfile::{Lexer, parse, parse_instruction};
use proptest::prelude::*;

/// Pieces that exercise directives, continuations, heredocs, flags, JSON and `${}`.
fn dockerfile_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("FROM ".to_string()),
        Just("RUN ".to_string()),
        Just("COPY ".to_string()),
        Just("ADD ".to_string()),
        Just("ENV ".to_string()),
        Just("ARG ".to_string()),
        Just("ONBUILD ".to_string()),
        Just("HEALTHCHECK ".to_string()),
        Just("LABEL ".to_string()),
        Just("SHELL ".to_string()),
        Just("# escape=`\n".to_string()),
        Just("# syntax=x\n".to_string()),
        Just("\\\n".to_string()),
        Just("`\n".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("<<EOF".to_string()),
        Just("<<-'E'".to_string()),
        Just("\nEOF\n".to_string()),
        Just("--mount=type=cache,target=/x ".to_string()),
        Just("--mount=".to_string()),
        Just("--from=a ".to_string()),
        Just("--interval=".to_string()),
        Just("[\"a\", ".to_string()),
        Just("]".to_string()),
        Just("${a:-".to_string()),
        Just("}".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just(" AS ".to_string()),
        Just("=".to_string()),
        "[a-zA-Z0-9 $#%/\\\\*?{}:\\-+]{0,6}",
    ]
}

fn dockerfile_like() -> impl Strategy<Value = String> {
    prop::collection::vec(dockerfile_piece(), 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in ".*") {
        let _ = parse(&text);
        let _ = parse_instruction(&text, '\\');
    }

    #[test]
    fn parse_never_panics_on_dockerfile_like_text(text in dockerfile_like()) {
        let _ = parse(&text);
        let _ = parse_instruction(&text, '`');
    }

    #[test]
    fn lexer_never_panics(word in "[a-zA-Z0-9 $#%/\\\\*?{}:\\-+=\"'`!@]{0,40}") {
        let env = |k: &str| if k.len().is_multiple_of(2) { Some(format!("v{k} x")) } else { None };
        for escape in ['\\', '`'] {
            let lex = Lexer::new(escape);
            let _ = lex.expand_word(&word, &env);
            let _ = lex.expand_words(&word, &env);
            let raw = lex.raw_quotes(true).raw_escapes(true).skip_unset_env(true);
            let _ = raw.expand_words(&word, &env);
        }
    }
}
