//! labrun's exit codes, by name. Whose fault an ending is decides its code, as it decides
//! the help a failed step's message gives ([`lab_ops::Blame`]).

use lab_ops::Blame;

/// How a labrun command ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything asked for was done.
    Success = 0,
    /// A problem of the user's: the `.lab` file, its arguments or data, the command line,
    /// or a step that failed for them.
    User = 1,
    /// A problem of the machine: a library, the disk, the cache, the cluster.
    Environment = 2,
    /// A bug in labrun.
    Internal = 3,
    /// Stopped by Ctrl-C.
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Blame> for Exit {
    fn from(b: Blame) -> Exit {
        match b {
            Blame::User => Exit::User,
            Blame::Environment => Exit::Environment,
            Blame::Internal => Exit::Internal,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}
