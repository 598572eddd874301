//! Go's `text/tabwriter` (elastic tabstops), as docker's tables use it:
//! `NewWriter(out, minwidth=10, tabwidth=1, padding=3, ' ', 0)`.
//!
//! Cells are *terminated* by tabs; the text after the last tab of a line is not part
//! of any column. A column is a run of consecutive lines that all have a cell in it,
//! and its width is the widest cell plus padding, at least `minwidth`.

/// Renders tab-separated `text` into aligned columns.
pub fn align(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, minwidth, padding, &mut out);
    out
}

/// Display width of a cell (one column per char; docker's fork counts East Asian
/// wide characters as two, which this ignores).
fn width(s: &str) -> usize {
    s.chars().count()
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for (i, line) in lines.iter().enumerate().take(to).skip(from) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            // Only tab-terminated cells (all but the last) are padded.
            if j + 1 < line.len() && j < widths.len() {
                let w = width(cell);
                out.extend(std::iter::repeat_n(' ', widths[j].saturating_sub(w)));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        // A cell exists in this column: print the lines before the block, then find
        // the block's extent and width.
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut w = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            w = w.max(width(lines[this][column]) + padding);
            this += 1;
        }
        widths.push(w);
        format_block(lines, line0, this, widths, minwidth, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

/// docker's table writer settings.
pub fn docker_table(text: &str) -> String {
    align(text, 10, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_header_matches_docker() {
        let text = "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES\n\
                    d3c7d04c9be3\tbusybox:latest\t\"sh -c 'echo started…\"\t1 second ago\tUp Less than a second\t\ttrace-d\n";
        let want = "CONTAINER ID   IMAGE            COMMAND                  CREATED        STATUS                  PORTS     NAMES\n\
                    d3c7d04c9be3   busybox:latest   \"sh -c 'echo started…\"   1 second ago   Up Less than a second             trace-d\n";
        assert_eq!(docker_table(text), want);
    }

    #[test]
    fn minwidth_applies_and_last_cell_is_free() {
        assert_eq!(docker_table("a\tb\nccc\tdddddddddddddd\n"), "a         b\nccc       dddddddddddddd\n");
    }

    #[test]
    fn columns_are_per_contiguous_block() {
        // Go's own documentation example: the b and c columns are distinct.
        let got = align("aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n", 0, 1);
        assert_eq!(got, "aaaa bbb d\naa   b   dd\na    \naa   cccc eee\n");
    }
}
