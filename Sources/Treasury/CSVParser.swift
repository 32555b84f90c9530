/// One CSV record: its fields, decoded as UTF-8, and the physical line where it starts.
///
/// `line` is 1-based and counts every line feed in the file, including those inside quoted
/// fields and those of skipped empty lines, so it matches what an editor shows and can be used
/// in error pointers.
public struct CSVRecord: Sendable, Equatable {
    /// The fields, unquoted (`""` inside a quoted field becomes `"`), otherwise verbatim: no
    /// trimming, and line breaks inside quoted fields kept as written (`\r\n` or `\n`).
    public var fields: [String]
    /// The 1-based physical line on which the record starts.
    public var line: Int

    /// A record from its fields and starting line.
    public init(fields: [String], line: Int) {
        self.fields = fields
        self.line = line
    }
}

/// Why a byte stream is not valid CSV. Each case carries the 1-based physical line it refers
/// to, so a caller can point at it (`/rows/<line>`).
public enum CSVError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A byte sequence that is not UTF-8 (including a sequence cut short by the end of the file),
    /// on this line.
    case invalidUTF8(line: Int)
    /// A `"` in a field that did not start with one (`ab"c`); quote the whole field and double
    /// the quote instead.
    case quoteInUnquotedField(line: Int)
    /// Something other than `,` or a line break right after a quoted field's closing quote
    /// (`"abc"x`, `"abc" ,`).
    case textAfterClosingQuote(line: Int)
    /// The file ended inside a quoted field; `line` is where that field's opening quote is.
    case unterminatedQuote(line: Int)
    /// A carriage return outside quotes that is not followed by a line feed: only `\r\n` and
    /// `\n` end lines.
    case bareCarriageReturn(line: Int)
    /// The record starting on `line` is longer than `limit` bytes.
    case recordTooLong(line: Int, limit: Int)

    /// The 1-based physical line the error refers to.
    public var line: Int {
        switch self {
        case .invalidUTF8(let line), .quoteInUnquotedField(let line), .textAfterClosingQuote(let line),
            .unterminatedQuote(let line), .bareCarriageReturn(let line), .recordTooLong(let line, _):
            line
        }
    }

    public var description: String {
        switch self {
        case .invalidUTF8(let line): "line \(line): the file is not valid UTF-8"
        case .quoteInUnquotedField(let line):
            "line \(line): a quote inside an unquoted field; quote the whole field and write a quote in it as \"\""
        case .textAfterClosingQuote(let line):
            "line \(line): text after the closing quote of a quoted field; expected a comma or the end of the line"
        case .unterminatedQuote(let line): "line \(line): a quoted field that starts here is never closed"
        case .bareCarriageReturn(let line): "line \(line): a carriage return not followed by a line feed"
        case .recordTooLong(let line, let limit): "line \(line): the record is longer than \(limit) bytes"
        }
    }
}

/// A push-based, incremental RFC 4180 parser: feed it the file in chunks of any size, as they
/// arrive, and it hands back the records each chunk completes.
///
/// It exists so an upload can be validated while it streams, with memory bounded by the longest
/// record (``maxRecordBytes``) rather than by the file: it keeps only the record in progress and
/// never holds completed records beyond the array one call returns.
///
/// Chunks may split anywhere: inside a quoted field, between `\r` and `\n`, inside the byte-order
/// mark, or inside a multi-byte UTF-8 character. The format accepted:
/// - fields separated by `,`, records ended by `\r\n` or `\n` (both may be mixed); the last
///   record may or may not end with a line break;
/// - RFC 4180 quoting: a field that starts with `"` runs to the next lone `"`, `""` inside it is
///   one `"`, and it may contain commas and line breaks; a `"` elsewhere is an error;
/// - a UTF-8 byte-order mark at the very start of the file is skipped (anywhere else it is data);
/// - a completely empty line (nothing between two line breaks) is skipped, wherever it is, but
///   still counted in line numbers. A line of only spaces or only commas is a record, left to
///   the caller to judge;
/// - the whole file must be UTF-8.
///
/// After an error the parser stays failed: every further ``feed(_:)`` throws the same error
/// (see ``feed(_:)`` for the records before it).
/// ``finish()`` returns the parser to its initial state, ready for another file.
public struct CSVStreamParser: Sendable {
    /// The default record size limit, 64 KiB.
    public static let defaultMaxRecordBytes = 64 * 1024

    /// The most bytes one record may take, counting its separators and quotes but not the line
    /// break that ends it. It bounds the memory the parser holds.
    public let maxRecordBytes: Int

    private enum State: Sendable {
        /// Between records: a line break here is an empty line.
        case recordStart
        /// At the start of a field after a comma (or of a record's first field).
        case fieldStart
        case unquoted
        case quoted
        /// A `"` inside a quoted field: either the closing quote or the first half of `""`.
        case quoteInQuoted
    }

    private static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]
    private static let comma = UInt8(ascii: ",")
    private static let quote = UInt8(ascii: "\"")
    private static let lineFeed = UInt8(ascii: "\n")
    private static let carriageReturn = UInt8(ascii: "\r")

    private var state = State.recordStart
    /// The physical line of the next byte.
    private var line = 1
    private var recordLine = 1
    private var quoteLine = 1
    private var recordBytes = 0
    private var field: [UInt8] = []
    private var fields: [String] = []
    /// A `\r` outside quotes was read: the next byte must be `\n`.
    private var pendingCarriageReturn = false
    /// Still at the start of the file, possibly inside the byte-order mark.
    private var inByteOrderMark = true
    private var byteOrderMarkMatched = 0
    /// UTF-8 validation: continuation bytes still expected and the range the next one must be in.
    private var utf8Remaining = 0
    private var utf8Lower: UInt8 = 0x80
    private var utf8Upper: UInt8 = 0xBF
    private var failure: CSVError?

    /// A parser whose records may take at most `maxRecordBytes` bytes (at least 1).
    public init(maxRecordBytes: Int = CSVStreamParser.defaultMaxRecordBytes) {
        self.maxRecordBytes = Swift.max(1, maxRecordBytes)
    }

    /// Consumes the next chunk of the file and returns the records it completes, in order
    /// (possibly none). A record still open at the chunk's end is kept for the next call.
    ///
    /// At the first syntax error the parser fails. Records completed before the error in the same
    /// chunk are still returned, and the error is thrown by the next call (``feed(_:)`` or
    /// ``finish()``, which every caller makes); with none to return it is thrown at once. So every
    /// record before the error is delivered whatever the chunking, and a validator reports the
    /// same errors however the upload was split.
    public mutating func feed(_ bytes: some Collection<UInt8>) throws(CSVError) -> [CSVRecord] {
        if let failure { throw failure }
        var records: [CSVRecord] = []
        var error: CSVError?
        let contiguous: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            error = consume(buffer, into: &records)
        }
        if contiguous == nil {
            Array(bytes).withUnsafeBufferPointer { buffer in
                error = consume(buffer, into: &records)
            }
        }
        if let error {
            failure = error
            if records.isEmpty { throw error }
        }
        return records
    }

    /// Ends the file: returns the last record when the file does not end with a line break, and
    /// throws when the file ends inside a quoted field or a UTF-8 character, or after a lone
    /// `\r`. Afterwards the parser is back at its initial state, whatever the outcome.
    public mutating func finish() throws(CSVError) -> [CSVRecord] {
        defer { self = CSVStreamParser(maxRecordBytes: maxRecordBytes) }
        if let failure { throw failure }
        var records: [CSVRecord] = []
        if inByteOrderMark {
            // A file shorter than the mark that starts like it: those bytes are data.
            inByteOrderMark = false
            for byte in Self.byteOrderMark.prefix(byteOrderMarkMatched) {
                if let error = step(byte, into: &records) { throw error }
            }
        }
        if utf8Remaining > 0 { throw .invalidUTF8(line: line) }
        if pendingCarriageReturn { throw .bareCarriageReturn(line: line) }
        switch state {
        case .recordStart:
            break
        case .quoted:
            throw .unterminatedQuote(line: quoteLine)
        case .fieldStart, .unquoted, .quoteInQuoted:
            endField()
            endRecord(into: &records)
        }
        return records
    }

    private mutating func consume(_ buffer: UnsafeBufferPointer<UInt8>, into records: inout [CSVRecord]) -> CSVError? {
        var index = buffer.startIndex
        if inByteOrderMark {
            while index < buffer.endIndex, inByteOrderMark {
                let byte = buffer[index]
                index += 1
                if byteOrderMarkMatched < Self.byteOrderMark.count, byte == Self.byteOrderMark[byteOrderMarkMatched] {
                    byteOrderMarkMatched += 1
                    if byteOrderMarkMatched == Self.byteOrderMark.count { inByteOrderMark = false }
                    continue
                }
                // Not a byte-order mark after all: what matched so far, and this byte, are data.
                inByteOrderMark = false
                for replayed in Self.byteOrderMark.prefix(byteOrderMarkMatched) {
                    if let error = step(replayed, into: &records) { return error }
                }
                if let error = step(byte, into: &records) { return error }
            }
        }
        while index < buffer.endIndex {
            if let error = step(buffer[index], into: &records) { return error }
            index += 1
        }
        return nil
    }

    /// Advances the state machine by one byte.
    private mutating func step(_ byte: UInt8, into records: inout [CSVRecord]) -> CSVError? {
        if let error = checkUTF8(byte) { return error }
        if pendingCarriageReturn {
            guard byte == Self.lineFeed else { return .bareCarriageReturn(line: line) }
            pendingCarriageReturn = false
        }
        if state == .recordStart {
            switch byte {
            case Self.lineFeed:
                line += 1  // an empty line: skipped
                return nil
            case Self.carriageReturn:
                pendingCarriageReturn = true
                return nil
            default:
                recordLine = line
                recordBytes = 0
                state = .fieldStart
            }
        }
        switch state {
        case .recordStart:
            return nil  // handled above
        case .quoted:
            if byte == Self.quote {
                state = .quoteInQuoted
            } else {
                if byte == Self.lineFeed { line += 1 }
                field.append(byte)
            }
        case .fieldStart, .unquoted, .quoteInQuoted:
            switch byte {
            case Self.comma:
                endField()
                state = .fieldStart
            case Self.lineFeed:
                endField()
                endRecord(into: &records)
                return nil
            case Self.carriageReturn:
                pendingCarriageReturn = true
                return nil
            case Self.quote:
                switch state {
                case .fieldStart:
                    state = .quoted
                    quoteLine = line
                case .quoteInQuoted:
                    field.append(Self.quote)
                    state = .quoted
                default:
                    return .quoteInUnquotedField(line: line)
                }
            default:
                guard state != .quoteInQuoted else { return .textAfterClosingQuote(line: line) }
                field.append(byte)
                state = .unquoted
            }
        }
        recordBytes += 1
        return recordBytes > maxRecordBytes ? .recordTooLong(line: recordLine, limit: maxRecordBytes) : nil
    }

    /// Incremental UTF-8 validation (the well-formed sequences of Unicode's table 3-7), so that a
    /// character split across chunks is fine and fields can be decoded without repair.
    private mutating func checkUTF8(_ byte: UInt8) -> CSVError? {
        if utf8Remaining > 0 {
            guard byte >= utf8Lower, byte <= utf8Upper else { return .invalidUTF8(line: line) }
            utf8Remaining -= 1
            utf8Lower = 0x80
            utf8Upper = 0xBF
            return nil
        }
        switch byte {
        case 0x00...0x7F: return nil
        case 0xC2...0xDF: utf8Remaining = 1
        case 0xE0:
            utf8Remaining = 2
            utf8Lower = 0xA0  // no overlong forms
        case 0xE1...0xEC, 0xEE...0xEF: utf8Remaining = 2
        case 0xED:
            utf8Remaining = 2
            utf8Upper = 0x9F  // no surrogates
        case 0xF0:
            utf8Remaining = 3
            utf8Lower = 0x90  // no overlong forms
        case 0xF1...0xF3: utf8Remaining = 3
        case 0xF4:
            utf8Remaining = 3
            utf8Upper = 0x8F  // nothing above U+10FFFF
        default: return .invalidUTF8(line: line)
        }
        return nil
    }

    private mutating func endField() {
        // The bytes were validated as they came, so decoding repairs nothing.
        fields.append(String(decoding: field, as: UTF8.self))
        field.removeAll(keepingCapacity: true)
    }

    private mutating func endRecord(into records: inout [CSVRecord]) {
        records.append(CSVRecord(fields: fields, line: recordLine))
        fields = []
        line += 1
        state = .recordStart
    }
}
