//! Leases on archives that something is reading (a download): while one is
//! held, the archive is not deleted or rewritten. Many leases on one
//! archive may be held at once (concurrent downloads are fine); each is
//! released when dropped, however its holder ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berkut_proto::ids::BackupId;

#[derive(Default)]
pub struct Leases {
    held: Mutex<HashMap<BackupId, usize>>,
}

pub struct Lease {
    leases: Arc<Leases>,
    id: BackupId,
}

impl Leases {
    pub fn acquire(self: &Arc<Self>, id: &BackupId) -> Lease {
        *self.held.lock().unwrap().entry(id.clone()).or_insert(0) += 1;
        Lease {
            leases: Arc::clone(self),
            id: id.clone(),
        }
    }

    pub fn is_busy(&self, id: &BackupId) -> bool {
        self.held.lock().unwrap().contains_key(id)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut held = self.leases.held.lock().unwrap();
        if let Some(n) = held.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_count_and_release() {
        let leases = Arc::new(Leases::default());
        let id: BackupId = "20260101T000000Z-00000000".parse().unwrap();
        let a = leases.acquire(&id);
        let b = leases.acquire(&id);
        drop(a);
        assert!(leases.is_busy(&id));
        drop(b);
        assert!(!leases.is_busy(&id));
    }
}
