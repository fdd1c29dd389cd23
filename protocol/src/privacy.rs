//! Pseudonyms: a radio identity (MAC address, beacon id) becomes a [`DeviceId`] here, in
//! memory, before anything is stored or sent. The pseudonym is a keyed hash (HMAC-SHA-256,
//! first 64 bits) under a secret key that the agent rotates every `pseudonym_rotation_days` and
//! then destroys, so pseudonyms of different periods cannot be joined.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::DeviceId;

/// Secret key bytes of one rotation period.
pub const KEY_LEN: usize = 32;

/// Hashes radio identities under one period's key.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer { key: <secret> }")
    }
}

impl Pseudonymizer {
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        Pseudonymizer {
            mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length"),
        }
    }

    /// The pseudonym of `identity` (raw address bytes, or a beacon's identifier bytes).
    pub fn pseudonym(&self, identity: &[u8]) -> DeviceId {
        let mut mac = self.mac.clone();
        mac.update(identity);
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        DeviceId(u64::from_be_bytes(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_identity_under_the_same_key_gives_the_same_pseudonym() {
        let p = Pseudonymizer::new(&[7; KEY_LEN]);
        assert_eq!(
            p.pseudonym(b"\xaa\xbb\xcc\xdd\xee\xff"),
            p.pseudonym(b"\xaa\xbb\xcc\xdd\xee\xff")
        );
        assert_ne!(
            p.pseudonym(b"\xaa\xbb\xcc\xdd\xee\xff"),
            p.pseudonym(b"\xaa\xbb\xcc\xdd\xee\x00")
        );
    }

    #[test]
    fn another_key_gives_unlinkable_pseudonyms() {
        let today = Pseudonymizer::new(&[1; KEY_LEN]);
        let tomorrow = Pseudonymizer::new(&[2; KEY_LEN]);
        assert_ne!(today.pseudonym(b"phone"), tomorrow.pseudonym(b"phone"));
    }

    #[test]
    fn the_pseudonym_is_hmac_sha256_truncated_to_64_bits() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        let mut key = [0u8; KEY_LEN];
        key[..4].copy_from_slice(b"Jefe");
        // A 32-byte zero-padded key equals the 4-byte key for HMAC (keys are zero-padded to the
        // block size), so the RFC's digest applies.
        let p = Pseudonymizer::new(&key);
        assert_eq!(
            p.pseudonym(b"what do ya want for nothing?"),
            DeviceId(0x5bdcc146bf60754e)
        );
    }
}
