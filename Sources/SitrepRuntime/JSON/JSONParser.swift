/// Why a JSON document was rejected.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Byte offset of the problem in the input.
    public let offset: Int
    /// Human-readable reason, e.g. `"unexpected character '}' at byte 17"`.
    public let message: String

    public init(offset: Int, message: String) {
        self.offset = offset
        self.message = message
    }

    public var description: String { message }
}

public enum JSONParser: Sendable {
    /// Strict RFC 8259: one value, optional surrounding whitespace, no trailing commas, no comments,
    /// no NaN/Infinity, no leading zeros, escapes incl. \uXXXX with surrogate pairs (lone surrogates
    /// rejected), control chars < 0x20 in strings rejected, invalid UTF-8 rejected, duplicate object
    /// keys rejected. `maxDepth` bounds nesting (arrays+objects) to protect the server: `[]` is one
    /// level deep, a scalar zero.
    public static func parse(
        _ bytes: some Collection<UInt8>,
        maxDepth: Int = 64
    ) throws(JSONParseError) -> JSONValue {
        let contiguous = bytes.withContiguousStorageIfAvailable { buffer in
            parse(buffer: buffer, maxDepth: maxDepth)
        }
        if let contiguous {
            return try contiguous.get()
        }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { buffer in
            parse(buffer: buffer, maxDepth: maxDepth)
        }.get()
    }

    static func parse(buffer: UnsafeBufferPointer<UInt8>, maxDepth: Int) -> Result<JSONValue, JSONParseError> {
        var scanner = JSONByteScanner(buffer: buffer, maxDepth: maxDepth)
        do throws(JSONParseError) {
            return .success(try scanner.parseDocument())
        } catch {
            return .failure(error)
        }
    }
}

// MARK: - Scanner

private enum JSONASCII {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let comma = UInt8(ascii: ",")
    static let colon = UInt8(ascii: ":")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
}

/// Recursive-descent parser over a contiguous byte buffer. Recursion depth is bounded by
/// `maxDepth`.
private struct JSONByteScanner {
    let buffer: UnsafeBufferPointer<UInt8>
    let count: Int
    let maxDepth: Int
    var position = 0
    var depth = 0
    var pendingMembers: [PendingMember] = []

    struct PendingMember {
        var key: String
        var value: JSONValue
        var offset: Int
    }

    init(buffer: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.buffer = buffer
        self.count = buffer.count
        self.maxDepth = maxDepth
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        if position < count {
            throw unexpected(at: position)
        }
        return value
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while position < count {
            switch buffer[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    /// Parses the value starting at `position` (whitespace already skipped).
    mutating func parseValue() throws(JSONParseError) -> JSONValue {
        guard position < count else { throw unexpected(at: position) }
        switch buffer[position] {
        case JSONASCII.openBrace: return .object(try parseObject())
        case JSONASCII.openBracket: return .array(try parseArray())
        case JSONASCII.quote: return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case JSONASCII.minus, JSONASCII.zero...JSONASCII.nine:
            return .number(try parseNumber())
        default:
            throw unexpected(at: position)
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let length = literal.utf8CodeUnitCount
        let start = literal.utf8Start
        for index in 0..<length {
            guard position < count, buffer[position] == start[index] else {
                throw unexpected(at: position)
            }
            position += 1
        }
    }

    mutating func enterContainer() throws(JSONParseError) {
        depth += 1
        if depth > maxDepth {
            throw JSONParseError(offset: position, message: "nesting deeper than \(maxDepth) levels")
        }
        position += 1
        skipWhitespace()
    }

    mutating func parseArray() throws(JSONParseError) -> [JSONValue] {
        try enterContainer()
        var elements: [JSONValue] = []
        if position < count, buffer[position] == JSONASCII.closeBracket {
            position += 1
            depth -= 1
            return elements
        }
        while true {
            elements.append(try parseValue())
            skipWhitespace()
            guard position < count else { throw unexpected(at: position) }
            switch buffer[position] {
            case JSONASCII.comma:
                position += 1
                skipWhitespace()
            case JSONASCII.closeBracket:
                position += 1
                depth -= 1
                return elements
            default:
                throw unexpected(at: position)
            }
        }
    }

    mutating func parseObject() throws(JSONParseError) -> JSONObject {
        try enterContainer()
        if position < count, buffer[position] == JSONASCII.closeBrace {
            position += 1
            depth -= 1
            return JSONObject()
        }
        // Members go on a stack shared by all objects being parsed, and the object is built once
        // its size is known: one hash per key, no rehashing as it grows.
        let firstMember = pendingMembers.count
        while true {
            guard position < count, buffer[position] == JSONASCII.quote else {
                throw unexpected(at: position)
            }
            let keyOffset = position
            let key = try parseString()
            skipWhitespace()
            guard position < count, buffer[position] == JSONASCII.colon else {
                throw unexpected(at: position)
            }
            position += 1
            skipWhitespace()
            let value = try parseValue()
            pendingMembers.append(PendingMember(key: key, value: value, offset: keyOffset))
            skipWhitespace()
            guard position < count else { throw unexpected(at: position) }
            switch buffer[position] {
            case JSONASCII.comma:
                position += 1
                skipWhitespace()
            case JSONASCII.closeBrace:
                position += 1
                depth -= 1
                return try buildObject(from: firstMember)
            default:
                throw unexpected(at: position)
            }
        }
    }

    /// Builds the object from `pendingMembers[firstMember...]` and pops them.
    mutating func buildObject(from firstMember: Int) throws(JSONParseError) -> JSONObject {
        var object = JSONObject(minimumCapacity: pendingMembers.count - firstMember)
        for index in firstMember..<pendingMembers.count {
            let member = pendingMembers[index]
            if !object.insertNew(member.key, member.value) {
                throw JSONParseError(
                    offset: member.offset,
                    message: "duplicate key \(Self.quoted(member.key)) at byte \(member.offset)"
                )
            }
        }
        pendingMembers.removeSubrange(firstMember...)
        return object
    }

    // MARK: Strings

    /// Parses the string whose opening quote is at `position`. A first pass finds the closing
    /// quote while validating escapes and UTF-8; the String is then built from the byte span in
    /// one go (decoding escapes into the new String's storage if there are any).
    mutating func parseString() throws(JSONParseError) -> String {
        let openingQuote = position
        var index = position + 1
        var hasEscapes = false
        while true {
            // Fast path: plain printable ASCII, 8 bytes at a time, then byte by byte.
            if let base = buffer.baseAddress {
                while index &+ 8 <= count,
                    !Self.hasSpecialByte(
                        UInt64(littleEndian: UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)))
                {
                    index &+= 8
                }
            }
            while index < count {
                let byte = buffer[index]
                if byte == JSONASCII.quote || byte == JSONASCII.backslash || byte < 0x20 || byte >= 0x80 {
                    break
                }
                index += 1
            }
            guard index < count else {
                throw JSONParseError(offset: openingQuote, message: "unterminated string")
            }
            let byte = buffer[index]
            if byte == JSONASCII.quote {
                break
            } else if byte == JSONASCII.backslash {
                hasEscapes = true
                index = try validateEscape(at: index, openingQuote: openingQuote)
            } else if byte < 0x20 {
                throw JSONParseError(
                    offset: index,
                    message: "unescaped control character \(Self.hexByte(byte)) in string at byte \(index)"
                )
            } else {
                index = try validateUTF8Sequence(at: index)
            }
        }
        let span = UnsafeBufferPointer(rebasing: buffer[(openingQuote + 1)..<index])
        position = index + 1
        if !hasEscapes {
            return String(decoding: span, as: UTF8.self)
        }
        // Escapes never expand: "\n" is 2 bytes for 1, "\uXXXX" 6 for at most 3, a surrogate pair
        // 12 for 4. So the span length is enough capacity.
        return String(unsafeUninitializedCapacity: span.count) { output in
            Self.decodeEscapes(span, into: output)
        }
    }

    /// True if any of the 8 bytes in `word` is `"`, `\`, a control character or non-ASCII.
    @inline(__always)
    static func hasSpecialByte(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        let special = (word &- ones &* 0x20) | ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash)
        return (special | word) & highs != 0
    }

    /// Validates the escape sequence starting at the backslash at `index`; returns the index just
    /// past it.
    func validateEscape(at index: Int, openingQuote: Int) throws(JSONParseError) -> Int {
        guard index + 1 < count else {
            throw JSONParseError(offset: openingQuote, message: "unterminated string")
        }
        switch buffer[index + 1] {
        case JSONASCII.quote, JSONASCII.backslash, JSONASCII.slash,
            UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            return index + 2
        case UInt8(ascii: "u"):
            let unit = try hex4(at: index + 2, escapeAt: index)
            switch unit {
            case 0xD800...0xDBFF:
                guard index + 7 < count, buffer[index + 6] == JSONASCII.backslash,
                    buffer[index + 7] == UInt8(ascii: "u")
                else {
                    throw loneSurrogate(unit, at: index)
                }
                let low = try hex4(at: index + 8, escapeAt: index + 6)
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw loneSurrogate(unit, at: index)
                }
                return index + 12
            case 0xDC00...0xDFFF:
                throw loneSurrogate(unit, at: index)
            default:
                return index + 6
            }
        default:
            throw JSONParseError(offset: index, message: "invalid escape sequence at byte \(index)")
        }
    }

    func hex4(at index: Int, escapeAt: Int) throws(JSONParseError) -> UInt32 {
        guard index + 4 <= count else {
            throw JSONParseError(offset: escapeAt, message: "invalid \\u escape at byte \(escapeAt)")
        }
        var value: UInt32 = 0
        for offset in 0..<4 {
            guard let digit = Self.hexValue(buffer[index + offset]) else {
                throw JSONParseError(offset: escapeAt, message: "invalid \\u escape at byte \(escapeAt)")
            }
            value = value << 4 | digit
        }
        return value
    }

    func loneSurrogate(_ unit: UInt32, at index: Int) -> JSONParseError {
        let hex = String(unit, radix: 16, uppercase: true)
        return JSONParseError(offset: index, message: "lone surrogate \\u\(hex) at byte \(index)")
    }

    /// Validates one multi-byte UTF-8 sequence (Unicode Table 3-7: no overlongs, no surrogates,
    /// nothing above U+10FFFF); returns the index just past it.
    func validateUTF8Sequence(at index: Int) throws(JSONParseError) -> Int {
        let lead = buffer[index]
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            secondRange = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            secondRange = 0x80...0x9F
        case 0xF0:
            length = 4
            secondRange = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            secondRange = 0x80...0x8F
        default:
            throw invalidUTF8(at: index)
        }
        guard index + length <= count, secondRange.contains(buffer[index + 1]) else {
            throw invalidUTF8(at: index)
        }
        for offset in 2..<length where buffer[index + offset] & 0xC0 != 0x80 {
            throw invalidUTF8(at: index)
        }
        return index + length
    }

    func invalidUTF8(at index: Int) -> JSONParseError {
        JSONParseError(offset: index, message: "invalid UTF-8 at byte \(index)")
    }

    /// Decodes an already validated string body containing escapes; returns the bytes written.
    static func decodeEscapes(
        _ input: UnsafeBufferPointer<UInt8>,
        into output: UnsafeMutableBufferPointer<UInt8>
    ) -> Int {
        var read = 0
        var written = 0
        let end = input.count
        while read < end {
            // Copy the run up to the next backslash.
            var runEnd = read
            while runEnd < end, input[runEnd] != JSONASCII.backslash {
                runEnd += 1
            }
            if runEnd > read {
                let run = runEnd - read
                output.baseAddress.unsafelyUnwrapped.advanced(by: written)
                    .update(from: input.baseAddress.unsafelyUnwrapped.advanced(by: read), count: run)
                written += run
                read = runEnd
                if read == end { break }
            }
            let escaped = input[read + 1]
            read += 2
            let replacement: UInt8
            switch escaped {
            case UInt8(ascii: "b"): replacement = 0x08
            case UInt8(ascii: "f"): replacement = 0x0C
            case UInt8(ascii: "n"): replacement = 0x0A
            case UInt8(ascii: "r"): replacement = 0x0D
            case UInt8(ascii: "t"): replacement = 0x09
            case UInt8(ascii: "u"):
                var scalar = hex4Unchecked(input, at: read)
                read += 4
                if scalar >= 0xD800, scalar <= 0xDBFF {
                    let low = hex4Unchecked(input, at: read + 2)
                    read += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                written += encodeUTF8(scalar, into: output, at: written)
                continue
            default: replacement = escaped  // \" \\ \/
            }
            output[written] = replacement
            written += 1
        }
        return written
    }

    static func hex4Unchecked(_ input: UnsafeBufferPointer<UInt8>, at index: Int) -> UInt32 {
        var value: UInt32 = 0
        for offset in 0..<4 {
            value = value << 4 | (hexValue(input[index + offset]) ?? 0)
        }
        return value
    }

    static func encodeUTF8(_ scalar: UInt32, into output: UnsafeMutableBufferPointer<UInt8>, at index: Int) -> Int {
        switch scalar {
        case 0..<0x80:
            output[index] = UInt8(truncatingIfNeeded: scalar)
            return 1
        case 0x80..<0x800:
            output[index] = UInt8(truncatingIfNeeded: 0xC0 | scalar >> 6)
            output[index + 1] = UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F)
            return 2
        case 0x800..<0x10000:
            output[index] = UInt8(truncatingIfNeeded: 0xE0 | scalar >> 12)
            output[index + 1] = UInt8(truncatingIfNeeded: 0x80 | scalar >> 6 & 0x3F)
            output[index + 2] = UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F)
            return 3
        default:
            output[index] = UInt8(truncatingIfNeeded: 0xF0 | scalar >> 18)
            output[index + 1] = UInt8(truncatingIfNeeded: 0x80 | scalar >> 12 & 0x3F)
            output[index + 2] = UInt8(truncatingIfNeeded: 0x80 | scalar >> 6 & 0x3F)
            output[index + 3] = UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F)
            return 4
        }
    }

    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte &- UInt8(ascii: "a") &+ 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte &- UInt8(ascii: "A") &+ 10)
        default: return nil
        }
    }

    // MARK: Numbers

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, starting at `position`.
    mutating func parseNumber() throws(JSONParseError) -> JSONNumber {
        let start = position
        var index = position
        if buffer[index] == JSONASCII.minus {
            index += 1
        }
        guard index < count else { throw unexpected(at: index) }
        let first = buffer[index]
        if first == JSONASCII.zero {
            index += 1
            if index < count, Self.isDigit(buffer[index]) {
                throw JSONParseError(offset: start, message: "leading zero in number at byte \(start)")
            }
        } else if Self.isDigit(first) {
            index = skipDigits(from: index + 1)
        } else {
            throw unexpected(at: index)
        }
        var isInteger = true
        if index < count, buffer[index] == JSONASCII.dot {
            isInteger = false
            index += 1
            guard index < count, Self.isDigit(buffer[index]) else { throw unexpected(at: index) }
            index = skipDigits(from: index + 1)
        }
        if index < count, buffer[index] | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            index += 1
            if index < count, buffer[index] == JSONASCII.plus || buffer[index] == JSONASCII.minus {
                index += 1
            }
            guard index < count, Self.isDigit(buffer[index]) else { throw unexpected(at: index) }
            index = skipDigits(from: index + 1)
        }
        position = index
        let text = String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<index]), as: UTF8.self)
        return JSONNumber(text: text, isInteger: isInteger)
    }

    @inline(__always)
    func skipDigits(from index: Int) -> Int {
        var index = index
        while index < count, Self.isDigit(buffer[index]) {
            index += 1
        }
        return index
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool {
        byte &- JSONASCII.zero < 10
    }

    // MARK: Errors

    func unexpected(at index: Int) -> JSONParseError {
        guard index < count else {
            return JSONParseError(offset: index, message: "unexpected end of input at byte \(index)")
        }
        let byte = buffer[index]
        if byte > 0x20, byte < 0x7F {
            let character = Character(Unicode.Scalar(byte))
            return JSONParseError(offset: index, message: "unexpected character '\(character)' at byte \(index)")
        }
        return JSONParseError(offset: index, message: "unexpected byte \(Self.hexByte(byte)) at byte \(index)")
    }

    static func hexByte(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16, uppercase: true)
        return byte < 0x10 ? "0x0" + digits : "0x" + digits
    }

    static func quoted(_ key: String) -> String {
        let limit = 64
        if key.count <= limit {
            return key.debugDescription
        }
        return String(key.prefix(limit)).debugDescription + "…"
    }
}
