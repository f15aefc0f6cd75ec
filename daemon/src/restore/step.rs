//! The steps of a restore, in the order they run. The record on the wire
//! and on disk names them by string (`RestoreStep::name`, the log files'
//! `NN-name.log`); inside the daemon a step is this enum, so a misspelled
//! step does not compile instead of being silently ignored.

/// One step of every restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    Verify,
    Decrypt,
    Inspect,
    Globals,
    CreateDatabase,
    PreData,
    Data,
    PostData,
    Properties,
    Analyze,
    Files,
    SmokeChecks,
    Swap,
    Cleanup,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 14] = [
        Step::Verify,
        Step::Decrypt,
        Step::Inspect,
        Step::Globals,
        Step::CreateDatabase,
        Step::PreData,
        Step::Data,
        Step::PostData,
        Step::Properties,
        Step::Analyze,
        Step::Files,
        Step::SmokeChecks,
        Step::Swap,
        Step::Cleanup,
    ];

    /// The step's name on the wire and in the evidence.
    pub fn name(self) -> &'static str {
        match self {
            Step::Verify => "verify",
            Step::Decrypt => "decrypt",
            Step::Inspect => "inspect",
            Step::Globals => "globals",
            Step::CreateDatabase => "create_database",
            Step::PreData => "pre_data",
            Step::Data => "data",
            Step::PostData => "post_data",
            Step::Properties => "properties",
            Step::Analyze => "analyze",
            Step::Files => "files",
            Step::SmokeChecks => "smoke_checks",
            Step::Swap => "swap",
            Step::Cleanup => "cleanup",
        }
    }

    /// Its place in the order, from 0: the prefix of its log file.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::Step;

    /// The steps, in order, as the table in section 6.16 of
    /// `docs/PROTOCOL.md` lists them.
    fn documented() -> Vec<String> {
        let text = include_str!("../../../docs/PROTOCOL.md");
        let section = text
            .split("### 6.16 ")
            .nth(1)
            .expect("section 6.16 of docs/PROTOCOL.md");
        let table = section
            .split("| step | what it does |")
            .nth(1)
            .expect("the table of steps");
        table
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with("| `"))
            .map(|line| line[3..].split('`').next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_order_and_the_names_are_those_of_the_protocol() {
        let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, documented());
        for (i, step) in Step::ALL.iter().enumerate() {
            assert_eq!(step.index(), i);
        }
    }
}
