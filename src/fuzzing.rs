//! Input damage for the property-driven fuzz tests of this crate and the sim crate (scenario
//! files): one definition of "a valid document with a few bytes cut, replaced or inserted".

/// `text` with `edits` applied: (position, operation, byte) — cut, replace or insert one byte
/// (no edit at all sometimes: the valid document must go through too).
pub fn damage(text: &str, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for &(position, operation, byte) in edits {
        let at = if bytes.is_empty() { 0 } else { position % (bytes.len() + 1) };
        match operation % 3 {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 if at < bytes.len() => bytes[at] = byte,
            _ => bytes.insert(at, byte),
        }
    }
    bytes
}
