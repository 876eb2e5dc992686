//! One load in progress: where values come from (the environment, and the
//! configuration file's name for messages) and the one list of problems every
//! section adds to, so a single run reports them all.

use super::{ConfigError, Env};

/// Reads variables for the sections and collects what they find wrong.
pub(super) struct Loader<'a> {
    env: &'a dyn Env,
    /// The configuration file as problems cite it.
    file: String,
    problems: Vec<String>,
}

impl<'a> Loader<'a> {
    pub(super) fn new(env: &'a dyn Env, file: String) -> Self {
        Self {
            env,
            file,
            problems: Vec::new(),
        }
    }

    /// The variable's value; empty values count as unset.
    pub(super) fn var(&self, name: &str) -> Option<String> {
        self.env.var(name)
    }

    /// `FILE: key`, the way a problem names a key of the file.
    pub(super) fn key(&self, key: &str) -> String {
        format!("{}: {key}", self.file)
    }

    /// Records one problem; it must name the key or variable at fault.
    pub(super) fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// `var` as a whole number when set, else the file's value, else `default`.
    /// A variable that is not a number is a problem (and `default` stands in).
    pub(super) fn whole_number(&mut self, var: &str, file: Option<u64>, default: u64) -> u64 {
        match self.var(var) {
            Some(v) => v.trim().parse::<u64>().unwrap_or_else(|_| {
                self.problem(format!("{var}={v:?}: expected a whole number"));
                default
            }),
            None => file.unwrap_or(default),
        }
    }

    /// `value` when nothing was found wrong, else every problem.
    pub(super) fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError(self.problems))
        }
    }
}

/// `1/true/yes/on` or `0/false/no/off`, any case.
pub(super) fn truthy(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}
