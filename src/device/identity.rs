//! Device identities and per-device randomness, both derived from
//! `(seed, index)` so a run can be repeated exactly.
//!
//! `Device-Id` looks like a Wi-Fi MAC (lower-case, colon-separated): two
//! seed-derived bytes (locally administered, unicast) then the device index
//! in big-endian, so ids are unique within a run and stable across runs with
//! the same seed. `Client-Id` is a UUID v4 drawn from the device's RNG.

use crate::protocol::DeviceIdentity;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SplitMix64 step: spreads `(seed, index)` into independent RNG seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG of device `index` in a run with `seed`.
pub fn rng_for(seed: u64, index: u32) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(seed ^ mix(index as u64 + 1)))
}

/// The identity of device `index` in a run with `seed`.
pub fn identity_for(seed: u64, index: u32, token: Option<String>) -> DeviceIdentity {
    let prefix = mix(seed).to_be_bytes();
    let i = index.to_be_bytes();
    // 0x02 bit: locally administered; low bit clear: unicast.
    let mac = [(prefix[0] & 0xfc) | 0x02, prefix[1], i[0], i[1], i[2], i[3]];
    let device_id = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    let mut rng = rng_for(seed, index);
    let mut u = [0u8; 16];
    rng.fill_bytes(&mut u);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    let client_id = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    DeviceIdentity {
        device_id,
        client_id,
        token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn device_ids_look_like_macs_and_are_unique() {
        let ids: HashSet<String> = (0..1000).map(|i| identity_for(7, i, None).device_id).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(5) {
            let parts: Vec<&str> = id.split(':').collect();
            assert_eq!(parts.len(), 6, "{id}");
            assert!(parts.iter().all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok()));
            assert_eq!(id, &id.to_lowercase());
        }
    }

    #[test]
    fn same_seed_same_identity_other_seed_other_identity() {
        assert_eq!(identity_for(1, 3, None), identity_for(1, 3, None));
        assert_ne!(identity_for(1, 3, None).device_id, identity_for(2, 3, None).device_id);
    }

    #[test]
    fn client_id_is_uuid_v4() {
        let id = identity_for(1, 0, None).client_id;
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }
}
