use super::*;
use serde_json::json;

const KEY: &str = "00112233445566778899aabbccddeeff";
const NONCE: &str = "01000000a1b2c3d40000000000000000";
const PLAIN: &[u8] = b"xiaozhi udp vector: 0123456789abcdefghij";

/// Ciphertexts of `PLAIN` made by an independent implementation, OpenSSL
/// 3.0's command line, with the datagram header as the IV:
///
/// ```text
/// printf 'xiaozhi udp vector: 0123456789abcdefghij' \
///   | openssl enc -aes-128-ctr -K 00112233445566778899aabbccddeeff \
///       -iv 01000028a1b2c3d400000a8c00000007 | od -An -tx1 -v
/// ```
///
/// (timestamp 0xa8c, sequence 7), and the same with sequence 0xffffffff,
/// whose second block's counter carries into the timestamp bytes.
const OPENSSL_SEQ_7: &str = "87600670a736e0fc5b81b37210e5f65864b5bd1eea14776a29e57b79dcaaad1f1dbe992c84b1143e";
const OPENSSL_SEQ_MAX: &str = "901326bad92a9dd75d728fa3b1faf50b3a654f7fb25ff93f4350dadef6e8f7791d6b70eb48cf628a";

fn keys() -> ([u8; 16], [u8; 16]) {
    let key = hex::decode(KEY).unwrap().try_into().unwrap();
    let nonce = hex::decode(NONCE).unwrap().try_into().unwrap();
    (key, nonce)
}

#[test]
fn sealed_datagram_is_the_header_then_openssl_ciphertext() {
    let (key, nonce) = keys();
    let cipher = UdpCipher::new(&key);
    for (sequence, expected) in [(7, OPENSSL_SEQ_7), (u32::MAX, OPENSSL_SEQ_MAX)] {
        let d = cipher.seal(&nonce, 0xa8c, sequence, PLAIN);
        let header = format!("01000028a1b2c3d400000a8c{sequence:08x}");
        assert_eq!(hex::encode(&d[..HEADER_LEN]), header);
        assert_eq!(hex::encode(&d[HEADER_LEN..]), expected);
    }
}

#[test]
fn open_decrypts_with_the_received_header_as_counter_block() {
    let (key, nonce) = keys();
    let cipher = UdpCipher::new(&key);
    let mut d = hex::decode(format!("01000028a1b2c3d400000a8c00000007{OPENSSL_SEQ_7}")).unwrap();
    let (h, payload) = cipher.open(&d).unwrap();
    assert_eq!(payload, PLAIN);
    assert_eq!(
        h,
        UdpHeader {
            flags: 0,
            payload_len: 40,
            ssrc: 0xa1b2c3d4,
            timestamp: 0xa8c,
            sequence: 7
        }
    );
    assert_eq!(cipher.seal(&nonce, 0xa8c, 7, &payload), d);
    d.push(0);
    assert_eq!(cipher.open(&d), Err(Malformed::Length { said: 40, got: 57 }));
}

#[test]
fn short_and_wrong_type_datagrams_are_malformed() {
    let cipher = UdpCipher::new(&[0; 16]);
    assert_eq!(cipher.open(&[1; 15]), Err(Malformed::Short(15)));
    let mut d = vec![0u8; 16];
    d[0] = 2;
    assert_eq!(cipher.open(&d), Err(Malformed::Type(2)));
    d[0] = 1;
    assert_eq!(cipher.open(&d).unwrap().1, Vec::<u8>::new());
}

fn hello_udp(key: &str, nonce: &str, port: serde_json::Value) -> serde_json::Value {
    json!({"server": "127.0.0.1", "port": port, "encryption": "aes-128-ctr", "key": key, "nonce": nonce})
}

#[test]
fn hello_udp_block_is_checked_as_the_firmware_checks_it() {
    let ok = UdpParams::from_hello(Some(&hello_udp(KEY, NONCE, json!(8884)))).unwrap();
    assert_eq!(
        (ok.server.as_str(), ok.port, ok.ssrc()),
        ("127.0.0.1", 8884, 0xa1b2c3d4)
    );
    assert_eq!(UdpParams::from_hello(Some(&ok.to_hello())).unwrap(), ok);
    let err = |v: serde_json::Value| UdpParams::from_hello(Some(&v)).unwrap_err();
    assert_eq!(
        err(hello_udp(&KEY[..30], NONCE, json!(8884))),
        "server hello `udp.key` is 15 bytes, not 16"
    );
    assert_eq!(
        err(hello_udp(KEY, "zz", json!(8884))),
        "server hello `udp.nonce` is not hex: Invalid character 'z' at position 0"
    );
    assert_eq!(
        err(hello_udp(KEY, NONCE, json!(0))),
        "server hello `udp.port` 0 is not a port (1-65535)"
    );
    assert_eq!(
        err(hello_udp(KEY, NONCE, json!("8884"))),
        "server hello `udp.port` is missing or not a number"
    );
    assert_eq!(
        UdpParams::from_hello(None).unwrap_err(),
        "server hello has no `udp` object"
    );
}

#[test]
fn sequence_window_counts_loss_reorder_and_duplicates() {
    let mut w = SequenceWindow::default();
    let arrivals: Vec<Arrival> = [1, 2, 4, 5, 3, 5, 9, 8, 10].into_iter().map(|s| w.arrive(s)).collect();
    use Arrival::*;
    assert_eq!(
        arrivals,
        [Accept, Accept, Accept, Accept, Late, Duplicate, Accept, Late, Accept]
    );
    // 3 and 8 came late (dropped, as the firmware drops them); 6 and 7 never came.
    assert_eq!(
        w.counts,
        DatagramCounts {
            received: 6,
            lost: 2,
            reordered: 2,
            duplicated: 1,
            malformed: 0
        }
    );
    let before = w.counts;
    w.arrive(200);
    w.malformed();
    let turn = w.counts - before;
    assert_eq!((turn.received, turn.lost, turn.malformed), (1, 189, 1));
    // Far behind the window: late, not a duplicate, loss unchanged.
    w.arrive(100);
    assert_eq!((w.counts.reordered, w.counts.lost), (3, 191));
    // The last two of an answer never came: counted when the sender says
    // so, and the next datagram is still judged by its own number.
    w.reset();
    assert_eq!(w.arrive(1), Accept);
    let before = w.counts;
    w.lost_unseen(2);
    let turn = w.counts - before;
    assert_eq!((turn.lost, turn.reordered, turn.received), (2, 0, 0));
    // The next answer's first datagram shows the same two as a gap: not
    // counted again; a further gap is.
    let before = w.counts;
    assert_eq!(w.arrive(4), Accept);
    assert_eq!(w.arrive(6), Accept);
    let next = w.counts - before;
    assert_eq!((next.lost, next.received), (1, 2));
}
