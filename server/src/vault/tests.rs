use super::*;

fn vault() -> Vault {
    Vault::new(MasterKey::from_bytes(&[7; 32]), [])
}

#[test]
fn roundtrip_and_fresh_nonces() {
    let v = vault();
    let slot = Slot::new("connections", "conn_1", "access_token");
    let a = v.seal(slot, b"xoxb-secret");
    let b = v.seal(slot, b"xoxb-secret");
    assert_ne!(a, b);
    assert_eq!(v.open(slot, &a).unwrap(), b"xoxb-secret");
    assert_eq!(Vault::key_id_of(&a), Some(v.active_key_id()));
}

#[test]
fn ciphertext_is_bound_to_row_and_column() {
    let v = vault();
    let sealed = v.seal(Slot::new("connections", "conn_1", "access_token"), b"t");
    for other in [
        Slot::new("connections", "conn_2", "access_token"),
        Slot::new("connections", "conn_1", "refresh_token"),
        Slot::new("provider_secrets", "conn_1", "access_token"),
    ] {
        assert!(matches!(v.open(other, &sealed), Err(VaultError::Integrity)));
    }
}

#[test]
fn every_bit_flip_and_truncation_fails() {
    let v = vault();
    let slot = Slot::new("t", "r", "c");
    let sealed = v.seal(slot, b"plaintext");
    for i in 0..sealed.len() {
        for bit in 0..8 {
            let mut bad = sealed.clone();
            bad[i] ^= 1 << bit;
            assert!(v.open(slot, &bad).is_err(), "flip at byte {i} bit {bit} opened");
        }
    }
    for len in 0..sealed.len() {
        assert!(v.open(slot, &sealed[..len]).is_err());
    }
}

#[test]
fn wrong_key_is_reported_by_id_and_old_keys_still_open() {
    let old = MasterKey::from_bytes(&[1; 32]);
    let new = MasterKey::from_bytes(&[2; 32]);
    let slot = Slot::new("t", "r", "c");
    let sealed = Vault::new(old.clone(), []).seal(slot, b"x");
    match Vault::new(new.clone(), []).open(slot, &sealed) {
        Err(VaultError::UnknownKey(id)) => assert_eq!(id, old.id()),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(Vault::new(new, [old]).open(slot, &sealed).unwrap(), b"x");
}

#[test]
fn master_key_parsing() {
    assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    assert!(MasterKey::from_base64("not base64!").is_err());
    let generated = MasterKey::generate_base64();
    assert!(MasterKey::from_base64(&generated).is_ok());
}

#[test]
fn secrets_do_not_print() {
    let s = Secret::new("xoxb-123");
    assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
}
