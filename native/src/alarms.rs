//! Resource alarms, as RabbitMQ raises them: memory over its watermark, free disk space under
//! its limit. Each monitor sets its own; the broker hears one reason for all that are on, and
//! publishers stay blocked until every one has cleared.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};
use warren_transports::Hub;

/// A resource that can run low.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Memory,
    Disk,
}

impl Resource {
    fn reason(self) -> &'static str {
        match self {
            Resource::Memory => "low on memory",
            Resource::Disk => "low on disk",
        }
    }
}

/// The alarms in force, shared by the monitors.
#[derive(Clone)]
pub struct Alarms {
    hub: Hub,
    on: Arc<Mutex<Vec<Resource>>>,
}

impl Alarms {
    pub fn new(hub: Hub) -> Alarms {
        Alarms {
            hub,
            on: Arc::default(),
        }
    }

    /// Raises or clears the alarm for `resource`; the broker hears the change, if any.
    pub async fn set(&self, resource: Resource, alarmed: bool) {
        let reason = {
            let mut on = self.on.lock().expect("alarm lock");
            let before = reason(&on);
            on.retain(|r| *r != resource);
            if alarmed {
                on.push(resource);
                on.sort_by_key(|r| *r as u8);
            }
            let after = reason(&on);
            if before == after {
                return;
            }
            after
        };
        self.hub.set_resource_alarm(reason).await;
    }
}

/// Reads a resource every `period` (`read` gives its level and whether that is too low, or
/// None when it cannot be read), and raises or clears its alarm when that changes.
pub async fn watch(
    alarms: Alarms,
    resource: Resource,
    limit: u64,
    period: Duration,
    mut read: impl FnMut() -> Option<(u64, bool)>,
) {
    let mut alarmed = false;
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let Some((level, low)) = read() else {
            continue;
        };
        if low != alarmed {
            alarmed = low;
            if low {
                warn!(
                    ?resource,
                    level, limit, "resource alarm set: publishers are paused"
                );
            } else {
                info!(?resource, level, limit, "resource alarm cleared");
            }
            alarms.set(resource, low).await;
        }
    }
}

/// What `connection.blocked` says: each resource that is low, joined with " & ".
fn reason(on: &[Resource]) -> Option<String> {
    if on.is_empty() {
        return None;
    }
    let parts: Vec<&str> = on.iter().map(|r| r.reason()).collect();
    Some(parts.join(" & "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reason_names_every_low_resource() {
        assert_eq!(reason(&[]), None);
        assert_eq!(reason(&[Resource::Disk]).as_deref(), Some("low on disk"));
        assert_eq!(
            reason(&[Resource::Memory, Resource::Disk]).as_deref(),
            Some("low on memory & low on disk")
        );
    }
}
