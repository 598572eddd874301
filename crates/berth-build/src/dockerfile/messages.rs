//! Message text the way BuildKit renders it: Go's `%q` quoting and the
//! "(did you mean X?)" hint BuildKit adds to unknown names. Kept in one place so every
//! error in the parser reads like Docker's, byte for byte where it can.

/// Go's `strconv.Quote` (`%q`): double quotes, `\"` and `\\`, C escapes for controls,
/// printable Unicode kept as is.
pub(crate) use berth_types::gofmt::quote as go_quote;

/// BuildKit's `suggest.WrapError`: appends " (did you mean X?)" when one of `options`
/// is within edit distance 2 of `value`; nothing when `value` is itself an option.
/// Case-insensitive comparison answers in the casing the user typed.
pub(crate) fn with_suggestion(
    message: String,
    value: &str,
    options: &[&str],
    case_sensitive: bool,
) -> String {
    let val = if case_sensitive {
        value.to_string()
    } else {
        value.to_lowercase()
    };
    let mut best: Option<String> = None;
    let mut min_dist = 3;
    for opt in options {
        let opt = if case_sensitive {
            opt.to_string()
        } else {
            opt.to_lowercase()
        };
        if val == opt {
            return message;
        }
        let dist = levenshtein(&val, &opt);
        if dist < min_dist {
            best = Some(if case_sensitive {
                opt
            } else {
                match_case(&opt, value)
            });
            min_dist = dist;
        }
    }
    match best {
        Some(m) => format!("{message} (did you mean {m}?)"),
        None => message,
    }
}

fn match_case(val: &str, orig: &str) -> String {
    if orig == orig.to_lowercase() {
        val.to_lowercase()
    } else if orig == orig.to_uppercase() {
        val.to_uppercase()
    } else {
        val.to_string()
    }
}

/// Plain Levenshtein distance over characters (insert, delete, substitute all cost 1).
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        let opts = ["RUN", "COPY", "ADD"];
        assert_eq!(
            with_suggestion("unknown instruction: RUNN".into(), "RUNN", &opts, false),
            "unknown instruction: RUNN (did you mean RUN?)"
        );
        assert_eq!(
            with_suggestion("x".into(), "cpy", &opts, false),
            "x (did you mean copy?)"
        );
        // Mixed case answers in lower case, as BuildKit's matchCase does.
        assert_eq!(
            with_suggestion("x".into(), "Cpy", &opts, false),
            "x (did you mean copy?)"
        );
        assert_eq!(with_suggestion("x".into(), "FROBNICATE", &opts, false), "x");
        assert_eq!(with_suggestion("x".into(), "run", &opts, false), "x");
        assert_eq!(
            with_suggestion("x".into(), "cach", &["cache", "bind"], true),
            "x (did you mean cache?)"
        );
    }

    #[test]
    fn levenshtein_distances() {
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("run", "run"), 0);
    }
}
