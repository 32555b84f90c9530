import Foundation

/// A date without a time of day or time zone (OpenAPI `format: date`), written `YYYY-MM-DD`.
/// Years are limited to 0000...9999 (proleptic Gregorian calendar), as in RFC 3339.
public struct CalendarDate: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var year: Int
    public var month: Int
    public var day: Int

    /// Nil unless the date exists (month 1...12, day within the month, Feb 29 only in leap years,
    /// year 0...9999).
    public init?(year: Int, month: Int, day: Int) {
        guard (0...9999).contains(year), (1...12).contains(month),
            day >= 1, day <= WireFormat.daysInMonth(year: year, month: month)
        else {
            return nil
        }
        self.year = year
        self.month = month
        self.day = day
    }

    /// Strict `YYYY-MM-DD`: exactly ten characters, and the date must exist.
    public init?(_ text: String) {
        let fields = WireFormat.withUTF8Bytes(text) { bytes -> (Int, Int, Int)? in
            bytes.count == 10 ? WireFormat.parseDateFields(bytes) : nil
        }
        guard let fields else { return nil }
        self.init(year: fields.0, month: fields.1, day: fields.2)
    }

    /// `YYYY-MM-DD`.
    public var description: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(10)
        WireFormat.appendDate(year: year, month: month, day: day, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func < (lhs: CalendarDate, rhs: CalendarDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }
}

/// Parsing, formatting and checking of the string formats that appear on the wire.
public enum WireFormat: Sendable {
    /// Strict RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS(.fraction)?(Z|±HH:MM)`, with `t`/`z` also
    /// accepted, at most 9 fraction digits, and every field range-checked (a leap second `:60` is
    /// rejected). Offsets are applied, so the result is the UTC instant; fractions are rounded to
    /// the nearest microsecond.
    public static func parseDateTime(_ s: String) -> Date? {
        guard let micros = withUTF8Bytes(s, parseDateTimeMicros) else { return nil }
        return Date(timeIntervalSinceReferenceDate: Double(micros - referenceDateMicros) / 1_000_000)
    }

    /// RFC 3339 in UTC: `2026-11-26T06:14:19Z` for whole seconds, otherwise exactly six fraction
    /// digits (`2026-11-26T06:14:19.123456Z`, rounded to the nearest microsecond). Instants outside
    /// years 0000...9999 are clamped to that range.
    public static func formatDateTime(_ d: Date) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(27)
        appendDateTime(d, quoted: false, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Strict `8-4-4-4-12` hexadecimal digits, either case.
    public static func parseUUID(_ s: String) -> UUID? {
        withUTF8Bytes(s) { bytes -> UUID? in
            guard bytes.count == 36 else { return nil }
            var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            let valid = withUnsafeMutableBytes(of: &uuid) { out -> Bool in
                var index = 0
                for byteIndex in 0..<16 {
                    if byteIndex == 4 || byteIndex == 6 || byteIndex == 8 || byteIndex == 10 {
                        guard bytes[index] == UInt8(ascii: "-") else { return false }
                        index += 1
                    }
                    guard let high = hexDigit(bytes[index]), let low = hexDigit(bytes[index + 1]) else {
                        return false
                    }
                    out[byteIndex] = high << 4 | low
                    index += 2
                }
                return true
            }
            return valid ? UUID(uuid: uuid) : nil
        }
    }

    /// Pragmatic address check: `local@domain.tld`, at most 254 bytes, exactly one `@`, no
    /// spaces, control characters or the characters that would need quoting in RFC 5322
    /// (`()<>[]:;,\"`); the local part is 1...64 bytes without leading, trailing or doubled dots;
    /// the domain has at least two dot-separated labels of 1...63 letters, digits, hyphens (not at
    /// either end) or non-ASCII characters.
    public static func isEmail(_ s: String) -> Bool {
        withUTF8Bytes(s) { bytes -> Bool in
            guard bytes.count <= 254, let at = bytes.firstIndex(of: UInt8(ascii: "@")) else { return false }
            let local = UnsafeBufferPointer(rebasing: bytes[..<at])
            let domain = UnsafeBufferPointer(rebasing: bytes[(at + 1)...])
            return isEmailLocalPart(local) && isEmailDomain(domain)
        }
    }

    /// An absolute URI per RFC 3986: `scheme ":" ...` where the scheme is a letter followed by
    /// letters, digits, `+`, `-` or `.`, and the rest uses only URI characters (unreserved,
    /// reserved, valid `%XX` escapes) with at most one `#`. No spaces, control or non-ASCII
    /// characters.
    public static func isURI(_ s: String) -> Bool {
        withUTF8Bytes(s) { bytes -> Bool in
            guard let first = bytes.first, isASCIILetter(first) else { return false }
            var index = 1
            while index < bytes.count, isSchemeCharacter(bytes[index]) {
                index += 1
            }
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return false }
            index += 1
            var seenFragment = false
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "%") {
                    guard index + 2 < bytes.count, hexDigit(bytes[index + 1]) != nil, hexDigit(bytes[index + 2]) != nil
                    else {
                        return false
                    }
                    index += 3
                    continue
                }
                if byte == UInt8(ascii: "#") {
                    if seenFragment { return false }
                    seenFragment = true
                } else if !isURICharacter(byte) {
                    return false
                }
                index += 1
            }
            return true
        }
    }
}

// MARK: - Internals

extension WireFormat {
    /// Microseconds between 1970-01-01 and 2001-01-01 (Foundation's reference date).
    static let referenceDateMicros: Int64 = 978_307_200_000_000
    /// 0000-01-01T00:00:00Z in Unix microseconds.
    static let minimumUnixMicros: Int64 = -62_167_219_200_000_000
    /// 9999-12-31T23:59:59.999999Z in Unix microseconds.
    static let maximumUnixMicros: Int64 = 253_402_300_799_999_999

    /// Runs `body` over the string's UTF-8 bytes without copying them when possible.
    static func withUTF8Bytes<R>(_ s: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let result = s.utf8.withContiguousStorageIfAvailable(body) {
            return result
        }
        var copy = s
        return copy.withUTF8(body)
    }

    static func isLeapYear(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400  // [0, 399]
        let shiftedMonth = month > 2 ? month - 3 : month + 9  // March = 0
        let dayOfYear = (153 * shiftedMonth + 2) / 5 + day - 1  // [0, 365]
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear  // [0, 146096]
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
    static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097  // [0, 146096]
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365  // [0, 399]
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)  // [0, 365]
        let shiftedMonth = (5 * dayOfYear + 2) / 153  // March = 0
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// The instant as whole microseconds since 1970, rounded to nearest and clamped to years
    /// 0000...9999 (NaN clamps to the minimum).
    static func unixMicroseconds(_ date: Date) -> Int64 {
        // Date stores seconds since 2001 as a Double; scaling that value directly avoids the extra
        // rounding step `timeIntervalSince1970` would add.
        let scaled = (date.timeIntervalSinceReferenceDate * 1_000_000).rounded()
        let lower = Double(minimumUnixMicros - referenceDateMicros)
        let upper = Double(maximumUnixMicros - referenceDateMicros)
        guard scaled >= lower else { return minimumUnixMicros }
        guard scaled <= upper else { return maximumUnixMicros }
        return Int64(scaled) + referenceDateMicros
    }

    /// The longest unquoted text ``putDateTime(_:quoted:into:)`` writes.
    static let dateTimeMaxBytes = 27

    static func appendDateTime(_ date: Date, quoted: Bool, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: dateTimeMaxBytes + 2) { buffer in
            out.append(contentsOf: UnsafeMutableBufferPointer(rebasing: buffer[..<putDateTime(date, quoted: quoted, into: buffer)]))
        }
    }

    /// Writes the RFC 3339 text of `date` (see ``formatDateTime(_:)``), in quotes when `quoted`,
    /// at the start of `buffer` (room for ``dateTimeMaxBytes`` + 2); returns its length.
    @inline(__always)
    static func putDateTime(_ date: Date, quoted: Bool, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let micros = unixMicroseconds(date)
        let (seconds, fraction) = floorDivide(micros, 1_000_000)
        let (days, secondOfDay) = floorDivide(seconds, 86_400)
        let (year, month, day) = civilFromDays(Int(days))
        let hour = Int(secondOfDay / 3600)
        let minute = Int(secondOfDay / 60 % 60)
        let second = Int(secondOfDay % 60)
        var index = 0
        if quoted {
            buffer[0] = UInt8(ascii: "\"")
            index = 1
        }
        index += putDate(year: year, month: month, day: day, into: UnsafeMutableBufferPointer(rebasing: buffer[index...]))
        buffer[index] = UInt8(ascii: "T")
        index += 1
        putDigits(hour, width: 2, then: UInt8(ascii: ":"), into: buffer, at: &index)
        putDigits(minute, width: 2, then: UInt8(ascii: ":"), into: buffer, at: &index)
        putDigits(second, width: 2, into: buffer, at: &index)
        if fraction != 0 {
            buffer[index] = UInt8(ascii: ".")
            index += 1
            putDigits(Int(fraction), width: 6, into: buffer, at: &index)
        }
        buffer[index] = UInt8(ascii: "Z")
        index += 1
        if quoted {
            buffer[index] = UInt8(ascii: "\"")
            index += 1
        }
        return index
    }

    static func appendDate(year: Int, month: Int, day: Int, to out: inout [UInt8]) {
        withDateText(year: year, month: month, day: day) { out.append(contentsOf: $0) }
    }

    /// Calls `body` with `YYYY-MM-DD`, or for fields out of range (only reachable through
    /// mutated fields) with a readable `year-month-day` rather than trapping.
    static func withDateText<R>(year: Int, month: Int, day: Int, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        guard (0...9999).contains(year), (0...99).contains(month), (0...99).contains(day) else {
            var text = "\(year)-\(month)-\(day)"
            return text.withUTF8(body)
        }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 10) { buffer in
            body(UnsafeBufferPointer(rebasing: buffer[..<putDate(year: year, month: month, day: day, into: buffer)]))
        }
    }

    /// `YYYY-MM-DD` of fields in range, at the start of `buffer` (room for 10); returns 10.
    @inline(__always)
    private static func putDate(year: Int, month: Int, day: Int, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        var index = 0
        putDigits(year, width: 4, then: UInt8(ascii: "-"), into: buffer, at: &index)
        putDigits(month, width: 2, then: UInt8(ascii: "-"), into: buffer, at: &index)
        putDigits(day, width: 2, into: buffer, at: &index)
        return index
    }

    /// ``putDigits(_:width:into:at:)``, then `separator`.
    @inline(__always)
    static func putDigits(_ value: Int, width: Int, then separator: UInt8, into buffer: UnsafeMutableBufferPointer<UInt8>, at index: inout Int) {
        putDigits(value, width: width, into: buffer, at: &index)
        buffer[index] = separator
        index += 1
    }

    /// Writes a non-negative value as exactly `width` decimal digits (zero-padded).
    @inline(__always)
    static func putDigits(
        _ value: Int,
        width: Int,
        into buffer: UnsafeMutableBufferPointer<UInt8>,
        at index: inout Int
    ) {
        var remaining = value
        var position = index + width
        while position > index {
            position -= 1
            buffer[position] = UInt8(truncatingIfNeeded: remaining % 10) &+ UInt8(ascii: "0")
            remaining /= 10
        }
        index += width
    }

    static func floorDivide(_ value: Int64, _ divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        var (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
        if remainder < 0 {
            quotient -= 1
            remainder += divisor
        }
        return (quotient, remainder)
    }

    /// Parses `count` decimal digits at `index`.
    @inline(__always)
    static func digits(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int, count: Int) -> Int? {
        var value = 0
        for position in index..<(index + count) {
            let digit = bytes[position] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            value = value * 10 + Int(digit)
        }
        return value
    }

    /// `YYYY-MM-DD` in the first ten bytes (caller checks the length); ranges are not checked.
    static func parseDateFields(_ bytes: UnsafeBufferPointer<UInt8>) -> (Int, Int, Int)? {
        guard bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            let year = digits(bytes, at: 0, count: 4),
            let month = digits(bytes, at: 5, count: 2),
            let day = digits(bytes, at: 8, count: 2)
        else {
            return nil
        }
        return (year, month, day)
    }

    /// RFC 3339 date-time to Unix microseconds.
    static func parseDateTimeMicros(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        let count = bytes.count
        // Shortest form: YYYY-MM-DDTHH:MM:SSZ
        guard count >= 20, let fields = parseDateFields(bytes),
            let date = CalendarDate(year: fields.0, month: fields.1, day: fields.2),
            bytes[10] | 0x20 == UInt8(ascii: "t"),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            let hour = digits(bytes, at: 11, count: 2), hour < 24,
            let minute = digits(bytes, at: 14, count: 2), minute < 60,
            let second = digits(bytes, at: 17, count: 2), second < 60
        else {
            return nil
        }
        var index = 19
        var nanoseconds = 0
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digitCount = 0
            while index < count, bytes[index] &- UInt8(ascii: "0") < 10 {
                guard digitCount < 9 else { return nil }
                nanoseconds = nanoseconds * 10 + Int(bytes[index] &- UInt8(ascii: "0"))
                digitCount += 1
                index += 1
            }
            guard digitCount > 0 else { return nil }
            for _ in digitCount..<9 {
                nanoseconds *= 10
            }
        }
        guard index < count else { return nil }
        var offsetSeconds = 0
        switch bytes[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard index + 6 == count, bytes[index + 3] == UInt8(ascii: ":"),
                let offsetHour = digits(bytes, at: index + 1, count: 2), offsetHour < 24,
                let offsetMinute = digits(bytes, at: index + 4, count: 2), offsetMinute < 60
            else {
                return nil
            }
            offsetSeconds = offsetHour * 3600 + offsetMinute * 60
            if bytes[index] == UInt8(ascii: "-") {
                offsetSeconds = -offsetSeconds
            }
            index += 6
        default:
            return nil
        }
        guard index == count else { return nil }
        let days = daysFromCivil(year: date.year, month: date.month, day: date.day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        return Int64(seconds) * 1_000_000 + Int64((nanoseconds + 500) / 1000)
    }

    @inline(__always)
    static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte &- UInt8(ascii: "A") &+ 10
        default: return nil
        }
    }

    static func isASCIILetter(_ byte: UInt8) -> Bool {
        (byte | 0x20) &- UInt8(ascii: "a") < 26
    }

    static func isASCIIDigit(_ byte: UInt8) -> Bool {
        byte &- UInt8(ascii: "0") < 10
    }

    static func isSchemeCharacter(_ byte: UInt8) -> Bool {
        isASCIILetter(byte) || isASCIIDigit(byte)
            || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
    }

    /// RFC 3986 unreserved, gen-delims (except `#`, handled by the caller) and sub-delims.
    static func isURICharacter(_ byte: UInt8) -> Bool {
        if isASCIILetter(byte) || isASCIIDigit(byte) { return true }
        switch byte {
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
            UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "["), UInt8(ascii: "]"),
            UInt8(ascii: "@"), UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","),
            UInt8(ascii: ";"), UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }

    static func isEmailLocalPart(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard (1...64).contains(bytes.count), bytes.first != UInt8(ascii: "."), bytes.last != UInt8(ascii: ".")
        else {
            return false
        }
        var previous: UInt8 = 0
        for byte in bytes {
            if byte <= 0x20 || byte == 0x7F { return false }
            switch byte {
            case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "<"), UInt8(ascii: ">"),
                UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: ":"), UInt8(ascii: ";"),
                UInt8(ascii: "@"), UInt8(ascii: "\\"), UInt8(ascii: ","), UInt8(ascii: "\""):
                return false
            case UInt8(ascii: "."):
                if previous == UInt8(ascii: ".") { return false }
            default:
                break
            }
            previous = byte
        }
        return true
    }

    static func isEmailDomain(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var labels = 0
        var labelStart = 0
        for index in 0...bytes.count {
            guard index == bytes.count || bytes[index] == UInt8(ascii: ".") else {
                let byte = bytes[index]
                guard byte >= 0x80 || isASCIILetter(byte) || isASCIIDigit(byte) || byte == UInt8(ascii: "-") else {
                    return false
                }
                continue
            }
            let length = index - labelStart
            guard (1...63).contains(length),
                bytes[labelStart] != UInt8(ascii: "-"), bytes[index - 1] != UInt8(ascii: "-")
            else {
                return false
            }
            labels += 1
            labelStart = index + 1
        }
        return labels >= 2
    }
}
