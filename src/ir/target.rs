//! Deployment targets and the specification version / opset each one implies.

use std::fmt;
use std::str::FromStr;

/// A Core ML deployment target, ordered by capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// iOS15 / macOS12: the first ML Program opset (CoreML5).
    IOS15,
    /// iOS16 / macOS13: constexpr compression ops, fp16 I/O (CoreML6).
    IOS16,
    /// iOS17 / macOS14 (CoreML7).
    IOS17,
    /// iOS18 / macOS15: sub-byte and grouped compression ops (CoreML8).
    IOS18,
}

impl Target {
    /// Every target, oldest first.
    pub const ALL: [Target; 4] = [Target::IOS15, Target::IOS16, Target::IOS17, Target::IOS18];

    /// `Model.specificationVersion` for this target.
    pub fn spec_version(self) -> i32 {
        match self {
            Target::IOS15 => 6,
            Target::IOS16 => 7,
            Target::IOS17 => 8,
            Target::IOS18 => 9,
        }
    }

    /// The MIL opset string (`Function.opset`).
    pub fn opset(self) -> &'static str {
        match self {
            Target::IOS15 => "CoreML5",
            Target::IOS16 => "CoreML6",
            Target::IOS17 => "CoreML7",
            Target::IOS18 => "CoreML8",
        }
    }

    /// The target whose opset string is `opset`.
    pub fn from_opset(opset: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.opset() == opset)
    }

    /// The iOS name of the target.
    pub fn name(self) -> &'static str {
        match self {
            Target::IOS15 => "iOS15",
            Target::IOS16 => "iOS16",
            Target::IOS17 => "iOS17",
            Target::IOS18 => "iOS18",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for a target name that is not one of the accepted spellings.
#[derive(Debug, thiserror::Error)]
#[error("unknown target '{0}' (expected one of iOS15, iOS16, iOS17, iOS18, macOS12, macOS13, macOS14, macOS15)")]
pub struct UnknownTarget(pub String);

impl FromStr for Target {
    type Err = UnknownTarget;

    fn from_str(s: &str) -> Result<Target, UnknownTarget> {
        match s.to_ascii_lowercase().as_str() {
            "ios15" | "macos12" => Ok(Target::IOS15),
            "ios16" | "macos13" => Ok(Target::IOS16),
            "ios17" | "macos14" => Ok(Target::IOS17),
            "ios18" | "macos15" => Ok(Target::IOS18),
            _ => Err(UnknownTarget(s.to_string())),
        }
    }
}
