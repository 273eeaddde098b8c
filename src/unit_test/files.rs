//! Which tests run against which pipeline. Each file on the command line is either a
//! pipeline (its own `[[tests]]`, if any, run against it) or a file of tests alone, run
//! against the pipeline its `pipeline = "PATH"` names (relative to the tests file) or,
//! without that key, against the last pipeline before it on the command line.

use std::path::{Component, Path, PathBuf};

use crate::config::{self, ConfigError};
use crate::pipeline::Pipeline;

use super::spec::{read_tests, UnitTest};
use super::TestConfigError;

/// Tests from one file and the pipeline they run against.
#[derive(Debug)]
pub(super) struct Suite {
    /// The file the tests are written in.
    pub(super) file: String,
    /// The pipeline's file name (for errors) and text: each test builds it afresh.
    pub(super) pipeline_file: String,
    pub(super) pipeline_text: String,
    pub(super) tests: Vec<UnitTest>,
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads every file and checks every test; all problems are reported together.
pub(super) fn load(paths: &[PathBuf], env: Env) -> Result<Vec<Suite>, Vec<TestConfigError>> {
    let mut suites = Vec::new();
    let mut errors = Vec::new();
    // The last pipeline file on the command line, for a tests file that names none.
    let mut last_pipeline: Option<PathBuf> = None;
    for path in paths {
        match load_file(path, last_pipeline.as_deref(), env) {
            Ok(Loaded::Pipeline(suite)) => {
                last_pipeline = Some(path.clone());
                suites.push(suite);
            }
            Ok(Loaded::Tests(suite)) => suites.push(suite),
            Err(mut e) => {
                // A broken pipeline is still the one a following tests file means.
                last_pipeline = Some(path.clone());
                errors.append(&mut e);
            }
        }
    }
    if errors.is_empty() {
        Ok(suites)
    } else {
        Err(errors)
    }
}

enum Loaded {
    Pipeline(Suite),
    Tests(Suite),
}

fn load_file(
    path: &Path,
    last_pipeline: Option<&Path>,
    env: Env,
) -> Result<Loaded, Vec<TestConfigError>> {
    let (file, text) = config::read(path).map_err(|e| vec![e.into()])?;
    let mut table = config::parse_table(&file, &text, env).map_err(into_errors)?;
    let tests = table.remove("tests");
    let named_pipeline = table.remove("pipeline");
    if !table.is_empty() {
        if named_pipeline.is_some() {
            return Err(vec![top_level(
                &file,
                "pipeline",
                "only a file of tests alone names its pipeline; this file is a pipeline",
            )]);
        }
        // A pipeline, with its tests inline (or none).
        let pipeline = Pipeline::from_str(&file, &text, env).map_err(into_errors)?;
        let tests = match tests {
            Some(tests) => read_tests(&file, tests, &pipeline)?,
            None => Vec::new(),
        };
        return Ok(Loaded::Pipeline(Suite {
            file: file.clone(),
            pipeline_file: file,
            pipeline_text: text,
            tests,
        }));
    }
    let Some(tests) = tests else {
        return Err(vec![top_level(
            &file,
            "tests",
            "the file holds no [[tests]]",
        )]);
    };
    let pipeline_path = match named_pipeline {
        Some(toml::Value::String(named)) => beside(path, &named),
        Some(_) => {
            return Err(vec![top_level(
                &file,
                "pipeline",
                "expected the path of a pipeline file (relative to this file)",
            )])
        }
        None => match last_pipeline {
            Some(previous) => previous.to_path_buf(),
            None => {
                return Err(vec![top_level(
                    &file,
                    "pipeline",
                    "a file of tests alone needs `pipeline = \"PATH\"` or a pipeline file before it on the command line",
                )])
            }
        },
    };
    let (pipeline_file, pipeline_text) =
        config::read(&pipeline_path).map_err(|e| vec![e.into()])?;
    let pipeline = Pipeline::from_str(&pipeline_file, &pipeline_text, env).map_err(into_errors)?;
    let tests = read_tests(&file, tests, &pipeline)?;
    Ok(Loaded::Tests(Suite {
        file,
        pipeline_file,
        pipeline_text,
        tests,
    }))
}

/// `named`, relative to the directory of `file`, with `dir/..` folded so that reports say
/// `pipelines/default.toml`, not `pipelines/tests/../default.toml`. Only a `..` after a
/// plain name is folded, as the kernel would unless that name is a symlink; pipelines are
/// rarely reached through one, and the name is only what is printed and opened.
fn beside(file: &Path, named: &str) -> PathBuf {
    let mut path = file.parent().unwrap_or(Path::new("")).to_path_buf();
    for part in Path::new(named).components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(path.components().next_back(), Some(Component::Normal(_))) =>
            {
                path.pop();
            }
            other => path.push(other),
        }
    }
    path
}

fn top_level(file: &str, field: &str, message: &str) -> TestConfigError {
    TestConfigError::Pipeline(ConfigError::TopLevel {
        file: file.into(),
        field: field.into(),
        message: message.into(),
    })
}

fn into_errors(errors: Vec<ConfigError>) -> Vec<TestConfigError> {
    errors.into_iter().map(TestConfigError::Pipeline).collect()
}
