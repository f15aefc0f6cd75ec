//! The maintenance state, as `maintenance status`, `watch` and `clear`
//! show it.

use berkut_proto::wire::MaintenanceInfo;

use super::text::opt_time;
use super::Show;

impl Show for MaintenanceInfo {
    fn print(&self) {
        let m = self;
        if m.active {
            println!(
                "maintenance: ON since {} ({}; restore {})",
                opt_time(m.since),
                m.reason.as_deref().unwrap_or("-"),
                m.restore_id
                    .as_ref()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        } else {
            println!("maintenance: off");
        }
    }
}
