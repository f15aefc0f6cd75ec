//! The backup plan, as `plan show`, `set`, `enable` and `disable` answer.

use berkut_proto::wire::PlanInfo;

use super::text::opt_time;
use super::Show;

impl Show for PlanInfo {
    fn print(&self) {
        let plan = self;
        let Some(preset) = plan.preset else {
            println!("no backup plan is set (berkutctl plan set --preset daily --at 02:30)");
            return;
        };
        let when = match (&plan.cron, &plan.at, &plan.weekday) {
            (Some(cron), _, _) => format!("cron {cron:?}"),
            (None, Some(at), Some(day)) => format!("{} on {day} at {at}", preset.as_str()),
            (None, Some(at), None) => format!("{} at {at}", preset.as_str()),
            _ => preset.as_str().to_owned(),
        };
        println!(
            "enabled:        {}",
            if plan.enabled { "yes" } else { "no" }
        );
        println!(
            "schedule:       {when} ({})",
            plan.timezone.as_deref().unwrap_or("-")
        );
        println!(
            "scope:          {}{}",
            plan.scope.as_str(),
            if plan.include_files { " + files" } else { "" }
        );
        println!(
            "retention:      {} days, always keeping the newest {} successful",
            plan.retention_days, plan.keep_last_successful
        );
        println!(
            "catch-up:       {}",
            if plan.catch_up {
                "one backup after a missed slot"
            } else {
                "off"
            }
        );
        println!("next run:       {}", opt_time(plan.next_run));
        println!("last success:   {}", opt_time(plan.last_success));
    }
}
