//! Which devices still wait for activation (PROTOCOL.md §1.4): the codes a
//! user would have to bind, kept by device index so a device that is bound
//! later in the run stops counting. Folded by the collector from
//! [`super::Event::Activation`].

use std::collections::BTreeMap;

/// Devices waiting for activation, by index, with their codes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivationWaits {
    /// Some device made an OTA check (the run had an OTA URL).
    pub checked: bool,
    /// Device index → the code its last OTA answer gave it.
    pub waiting: BTreeMap<u32, String>,
}

impl ActivationWaits {
    /// Device `index`'s last OTA check: `Some(code)` still waiting after
    /// its activation loop, `None` went through.
    pub fn note(&mut self, index: u32, code: Option<&str>) {
        self.checked = true;
        match code {
            Some(c) => {
                self.waiting.insert(index, c.to_string());
            }
            None => {
                self.waiting.remove(&index);
            }
        }
    }

    /// The codes, in device order.
    pub fn codes(&self) -> Vec<String> {
        self.waiting.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_bound_later_stops_waiting() {
        let mut w = ActivationWaits::default();
        w.note(2, Some("222222"));
        w.note(0, Some("000000"));
        w.note(1, None);
        assert_eq!(w.codes(), ["000000", "222222"]);
        w.note(2, None);
        assert_eq!(w.codes(), ["000000"]);
        assert!(w.checked);
    }
}
