//! Container paths as Docker reads them (Go's `path.Clean` on an absolute path).

/// Lexically cleans a container path and makes it absolute: `.` and empty components
/// go, `..` goes up but never above `/` (`/a/./b/../c` → `/a/c`, `../x` → `/x`).
pub fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            x => parts.push(x),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_go_path_clean() {
        assert_eq!(clean_abs("/a/./b/../c"), "/a/c");
        assert_eq!(clean_abs("a//b/"), "/a/b");
        assert_eq!(clean_abs("/../../etc"), "/etc");
        assert_eq!(clean_abs(""), "/");
    }
}
