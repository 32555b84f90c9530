import Foundation
import NIOCore

/// Appends JSON bytes to a growing buffer. Generated encoders call these in schema order, e.g.
/// `w.raw("{\"id\":"); w.uuid(id); w.raw(",\"name\":"); w.string(name); w.raw("}")`.
///
/// The writer does no structural checking: the caller is responsible for punctuation.
///
/// The bytes live in memory the writer owns, not in an `[UInt8]`: a page of 50 signals is ~2,500
/// appends, and `Array.append(contentsOf:)` cost ~80 instructions a call (capacity, uniqueness
/// and count bookkeeping through generic code) where this costs a comparison and a `memcpy`
/// (or a few moves, for a literal). A writer cannot be copied, so it never has to ask whether
/// its memory is shared.
///
/// `@unchecked Sendable` because of the pointer to its memory. That is safe because the writer
/// is noncopyable: exactly one value owns (and frees) that memory, and sending the writer to
/// another task moves it there.
public struct JSONWriter: ~Copyable, @unchecked Sendable {
    /// The JSON written so far.
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    /// The JSON written so far, in a buffer for the wire.
    public var byteBuffer: ByteBuffer {
        ByteBuffer(bytes: UnsafeRawBufferPointer(start: base, count: count))
    }

    /// How many bytes have been written.
    public var byteCount: Int { count }

    @usableFromInline
    var base: UnsafeMutablePointer<UInt8>
    @usableFromInline
    var count: Int
    @usableFromInline
    var capacity: Int

    public init(capacity: Int = 1024) {
        self.capacity = Swift.max(capacity, 16)
        base = .allocate(capacity: self.capacity)
        count = 0
    }

    deinit { base.deallocate() }

    /// Room for `n` more bytes.
    @inlinable @inline(__always)
    mutating func reserve(_ n: Int) {
        if _slowPath(capacity &- count < n) { grow(n) }
    }

    /// Moves to an allocation with room for `n` more bytes.
    @usableFromInline
    mutating func grow(_ n: Int) {
        let grown = Swift.max(capacity &* 2, count + n)
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        moved.update(from: base, count: count)
        base.deallocate()
        base = moved
        capacity = grown
    }

    /// Appends `n` bytes from `source`.
    @inlinable @inline(__always)
    mutating func append(_ source: UnsafePointer<UInt8>, count n: Int) {
        reserve(n)
        (base + count).update(from: source, count: n)
        count &+= n
    }

    /// Lets `body` write at most `n` bytes in place; it returns how many it wrote.
    @inlinable @inline(__always)
    mutating func write(atMost n: Int, _ body: (UnsafeMutableBufferPointer<UInt8>) -> Int) {
        reserve(n)
        count &+= body(UnsafeMutableBufferPointer(start: base + count, count: n))
    }

    /// Appends literal ASCII such as `{"id":` (keys and punctuation) as is. Inlined, so a
    /// literal's bytes are copied with its length known.
    @inlinable @inline(__always)
    public mutating func raw(_ s: StaticString) {
        if s.hasPointerRepresentation {
            append(s.utf8Start, count: s.utf8CodeUnitCount)
        } else {
            s.withUTF8Buffer { if let base = $0.baseAddress { append(base, count: $0.count) } }
        }
    }

    /// Appends one byte as is.
    @inlinable
    public mutating func raw(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count &+= 1
    }

    /// A quoted string. Escapes `"` `\` and control characters (`\n` `\r` `\t` `\b` `\f`, others as
    /// `\u00XX`), plus U+2028/U+2029 (as `\u2028`/`\u2029`) so output is safe inside JavaScript;
    /// everything else is copied as raw UTF-8.
    public mutating func string(_ s: String) {
        raw(UInt8(ascii: "\""))
        let done: Void? = s.utf8.withContiguousStorageIfAvailable { utf8 in
            appendEscaped(utf8)
        }
        if done == nil {
            var copy = s
            copy.withUTF8 { appendEscaped($0) }
        }
        raw(UInt8(ascii: "\""))
    }

    /// A quoted string from bytes that are already UTF-8 (PostgreSQL `text` of a UTF8 database),
    /// escaped like ``string(_:)``, without making a `String` of them first.
    public mutating func string(utf8 bytes: UnsafeRawBufferPointer) {
        raw(UInt8(ascii: "\""))
        bytes.withMemoryRebound(to: UInt8.self) { appendEscaped($0) }
        raw(UInt8(ascii: "\""))
    }

    public mutating func int(_ v: Int) {
        int(Int64(v))
    }

    public mutating func int(_ v: Int64) {
        if v >= 0, v < 10 {
            raw(UInt8(truncatingIfNeeded: v) &+ UInt8(ascii: "0"))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { scratch in
            var start = Self.putDecimal(v.magnitude, endingAt: 20, into: scratch)
            if v < 0 {
                start -= 1
                scratch[start] = UInt8(ascii: "-")
            }
            append(scratch.baseAddress! + start, count: 20 - start)
        }
    }

    public mutating func int(_ v: Int32) {
        int(Int64(v))
    }

    /// The shortest text that parses back to the same `Double`. Whole numbers within ±2^53 are
    /// written without a fraction (`1`, `-0`), others in plain decimal notation when that is short
    /// (`0.1`, `-12.25`), else as Swift prints them with `e+` shortened to `e` (`1e-07`, `1e20`,
    /// `1.7976931348623157e308`). NaN and infinities have no JSON form and are written as `null`.
    public mutating func double(_ v: Double) {
        guard v.isFinite else {
            null()
            return
        }
        let magnitude = v.magnitude
        if magnitude <= 9_007_199_254_740_992, v.rounded(.towardZero) == v {
            if v == 0, v.sign == .minus {
                raw("-0")
            } else {
                int(Int64(v))
            }
            return
        }
        if appendShortDecimal(v) {
            return
        }
        var text = v.description
        text.withUTF8 { utf8 in
            guard let base = utf8.baseAddress else { return }
            if let plus = utf8.firstIndex(of: UInt8(ascii: "+")) {
                append(base, count: plus)
                append(base + plus + 1, count: utf8.count - plus - 1)
            } else {
                append(base, count: utf8.count)
            }
        }
    }

    @inlinable
    public mutating func bool(_ v: Bool) {
        if v {
            raw("true")
        } else {
            raw("false")
        }
    }

    @inlinable
    public mutating func null() {
        raw("null")
    }

    /// A quoted lowercase UUID, `"0193b0c2-7d4e-7a3b-9c1d-2e3f4a5b6c7d"`.
    public mutating func uuid(_ v: UUID) {
        withUnsafeBytes(of: v.uuid) { uuidBytes in
            write(atMost: 38) { scratch in
                scratch[0] = UInt8(ascii: "\"")
                var index = 1
                for byteIndex in 0..<16 {
                    if byteIndex == 4 || byteIndex == 6 || byteIndex == 8 || byteIndex == 10 {
                        scratch[index] = UInt8(ascii: "-")
                        index += 1
                    }
                    let byte = uuidBytes[byteIndex]
                    scratch[index] = Self.lowercaseHex(byte >> 4)
                    scratch[index + 1] = Self.lowercaseHex(byte & 0x0F)
                    index += 2
                }
                scratch[37] = UInt8(ascii: "\"")
                return 38
            }
        }
    }

    /// A quoted RFC 3339 UTC timestamp, see `WireFormat.formatDateTime`.
    public mutating func dateTime(_ v: Date) {
        write(atMost: WireFormat.dateTimeMaxBytes + 2) { WireFormat.putDateTime(v, quoted: true, into: $0) }
    }

    /// A quoted `YYYY-MM-DD`.
    public mutating func date(_ v: CalendarDate) {
        raw(UInt8(ascii: "\""))
        WireFormat.withDateText(year: v.year, month: v.month, day: v.day) { append($0.baseAddress!, count: $0.count) }
        raw(UInt8(ascii: "\""))
    }

    // MARK: Internals

    @inline(__always)
    static func lowercaseHex(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? nibble &+ UInt8(ascii: "0") : nibble &+ (UInt8(ascii: "a") &- 10)
    }

    /// Writes `value` in decimal so that its last digit is at `end - 1`; returns the index of the
    /// first digit.
    @inline(__always)
    static func putDecimal(_ value: UInt64, endingAt end: Int, into scratch: UnsafeMutableBufferPointer<UInt8>)
        -> Int
    {
        var index = end
        var remaining = value
        repeat {
            let (quotient, digit) = remaining.quotientAndRemainder(dividingBy: 10)
            index -= 1
            scratch[index] = UInt8(truncatingIfNeeded: digit) &+ UInt8(ascii: "0")
            remaining = quotient
        } while remaining != 0
        return index
    }

    /// Writes `v` in plain decimal notation if a short such text reads back as exactly `v`: up to 8
    /// fraction digits below 2^20, up to 4 below 2^30, using as few digits as possible (so the
    /// output is what Swift's `description` prints, minus the allocation). Returns false, writing
    /// nothing, otherwise. `v` must be finite and not whole.
    mutating func appendShortDecimal(_ v: Double) -> Bool {
        let magnitude = v.magnitude
        let scale: Double
        var fractionDigits: Int
        if magnitude >= 1e-4, magnitude < 1_048_576 {
            scale = 1e8
            fractionDigits = 8
        } else if magnitude >= 1_048_576, magnitude < 1_073_741_824 {
            scale = 1e4
            fractionDigits = 4
        } else {
            return false
        }
        // In these ranges v * scale is within 0.03 of any short decimal that reads back as v, so
        // rounding finds it. `scaled` and `scale` are exact and IEEE division rounds correctly, so
        // the check below is precisely what a parser would make of the text scaled / scale.
        let scaled = (v * scale).rounded()
        guard scaled / scale == v else { return false }
        // Trailing zeros can go: the text still denotes the same number. At least one fraction
        // digit remains because `v` is not whole.
        var digits = Int64(scaled)
        while digits % 10 == 0 {
            digits /= 10
            fractionDigits -= 1
        }
        appendFixedPoint(digits, fractionDigits: fractionDigits)
        return true
    }

    mutating func appendFixedPoint(_ digits: Int64, fractionDigits: Int) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { scratch in
            // Fraction digits (zero-padded) right-aligned, then the point, then the integer part.
            var remaining = digits.magnitude
            var index = 24
            for _ in 0..<fractionDigits {
                let (quotient, digit) = remaining.quotientAndRemainder(dividingBy: 10)
                index -= 1
                scratch[index] = UInt8(truncatingIfNeeded: digit) &+ UInt8(ascii: "0")
                remaining = quotient
            }
            index -= 1
            scratch[index] = UInt8(ascii: ".")
            index = Self.putDecimal(remaining, endingAt: index, into: scratch)
            if digits < 0 {
                index -= 1
                scratch[index] = UInt8(ascii: "-")
            }
            append(scratch.baseAddress! + index, count: 24 - index)
        }
    }

    /// True if any of the 8 bytes in `word` is < 0x20, `"`, `\` or 0xE2 (lead byte of U+2028/9).
    /// Exact for "any", which is all the caller needs.
    @inline(__always)
    static func mayNeedEscape(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let control = (word &- ones &* 0x20) & ~word
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        let lineSeparatorLead = word ^ (ones &* 0xE2)
        let zeros =
            ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash)
            | ((lineSeparatorLead &- ones) & ~lineSeparatorLead)
        return (control | zeros) & highs != 0
    }

    /// The 8 bytes at `p` as a little-endian word (the first byte lowest).
    @inline(__always)
    static func word(_ p: UnsafePointer<UInt8>) -> UInt64 {
        UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt64.self))
    }

    /// Copies runs of bytes that need no escaping in one go.
    mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        guard let base = utf8.baseAddress else { return }
        let count = utf8.count
        var runStart = 0
        var index = 0
        while index < count {
            // Skip clean 8-byte blocks.
            while index &+ 8 <= count, !Self.mayNeedEscape(Self.word(base + index)) {
                index &+= 8
            }
            // Fewer than 8 bytes left of a longer string: the last 8 bytes as one word
            // (overlapping bytes already looked at). Clean means the rest is copied as it is; else
            // byte by byte below, as in strings shorter than a word.
            if index < count, index &+ 8 > count, count >= 8, !Self.mayNeedEscape(Self.word(base + (count &- 8))) {
                index = count
                break
            }
            // Then look at bytes one by one until the end of the flagged block.
            let blockEnd = Swift.min(index &+ 8, count)
            while index < blockEnd {
                let byte = base[index]
                if byte >= 0x20, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\"), byte != 0xE2 {
                    index &+= 1
                    continue
                }
                if byte == 0xE2 {
                    // U+2028 is E2 80 A8, U+2029 is E2 80 A9.
                    guard index + 2 < count, base[index + 1] == 0x80, base[index + 2] & 0xFE == 0xA8 else {
                        index &+= 1
                        continue
                    }
                    appendRun(base, from: runStart, to: index)
                    raw(base[index + 2] == 0xA8 ? "\\u2028" : "\\u2029")
                    index &+= 3
                    runStart = index
                    continue
                }
                appendRun(base, from: runStart, to: index)
                switch byte {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                case 0x08: raw("\\b")
                case 0x0C: raw("\\f")
                default:
                    raw("\\u00")
                    raw(Self.lowercaseHex(byte >> 4))
                    raw(Self.lowercaseHex(byte & 0x0F))
                }
                index &+= 1
                runStart = index
            }
        }
        appendRun(base, from: runStart, to: count)
    }

    @inline(__always)
    mutating func appendRun(_ base: UnsafePointer<UInt8>, from start: Int, to end: Int) {
        if end > start {
            append(base + start, count: end - start)
        }
    }
}
