//! Which stages a build needs and in what order they may run: the target stage and,
//! transitively, every stage it names (`FROM <stage>`, `COPY --from=<stage>`,
//! `RUN --mount=from=<stage>`). Stages nobody needs are not built; stages that do
//! not depend on each other can run at the same time.

use std::collections::BTreeSet;

use crate::dockerfile::{Dockerfile, InstructionKind, Stage};
use crate::error::BuildError;

/// A reference from one stage to another stage or to an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stage(usize),
    Image(String),
}

/// Resolves a `--from` / `FROM` word (already expanded) seen in stage `current`:
/// a stage name or index before `current`, else an image name.
pub fn resolve_ref(df: &Dockerfile, current: usize, word: &str) -> Source {
    let lower = word.to_ascii_lowercase();
    for s in df.stages.iter().take(current) {
        if s.name.as_deref() == Some(lower.as_str()) {
            return Source::Stage(s.index);
        }
    }
    if let Ok(i) = word.parse::<usize>()
        && i < current {
            return Source::Stage(i);
        }
    Source::Image(word.to_string())
}

/// The stage `target` names (the last stage when `None`).
pub fn target_stage(df: &Dockerfile, target: Option<&str>) -> Result<usize, BuildError> {
    match target {
        None | Some("") => df.stages.len().checked_sub(1).ok_or_else(|| BuildError::invalid("the Dockerfile has no build stage")),
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            df.stages
                .iter()
                .find(|s| s.name.as_deref() == Some(lower.as_str()))
                .map(|s| s.index)
                .ok_or_else(|| BuildError::invalid(format!("failed to reach build target {t} in Dockerfile")))
        }
    }
}

/// The stages a stage depends on directly. `expand` turns a raw word (a FROM image,
/// a `--from` value) into its value under the build's global arguments.
pub fn direct_deps(df: &Dockerfile, stage: &Stage, expand: &dyn Fn(&str) -> String) -> BTreeSet<usize> {
    let mut deps = BTreeSet::new();
    if let Source::Stage(i) = resolve_ref(df, stage.index, &expand(&stage.base)) {
        deps.insert(i);
    }
    for ins in &stage.instructions {
        let froms: Vec<&str> = match &ins.kind {
            InstructionKind::Copy(c) | InstructionKind::Add(c) => c.from.as_deref().into_iter().collect(),
            InstructionKind::Run { mounts, .. } => mounts.iter().filter_map(|m| m.from.as_deref()).collect(),
            _ => Vec::new(),
        };
        for f in froms {
            if let Source::Stage(i) = resolve_ref(df, stage.index, &expand(f)) {
                deps.insert(i);
            }
        }
    }
    deps
}

/// Every stage `target` needs, itself included, in Dockerfile order.
pub fn needed(df: &Dockerfile, target: usize, expand: &dyn Fn(&str) -> String) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !seen.insert(i) {
            continue;
        }
        todo.extend(direct_deps(df, &df.stages[i], expand));
    }
    seen.into_iter().collect()
}
