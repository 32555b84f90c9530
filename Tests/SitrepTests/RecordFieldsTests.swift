import Foundation
import NIOCore
import PostgresNIO
import Testing

@testable import Handlers

/// `RecordFields` reads a composite value's binary form (`record_send`) by hand; every way its
/// bytes can disagree with what the reader asks for is a `RowShapeError`, never a wrong value or
/// a read past the end.
struct RecordFieldsTests {
    /// A composite's bytes: the field count, then per field its type, its length, its bytes
    /// (nil: NULL).
    static func record(_ fields: [(PostgresDataType, [UInt8]?)], count: Int32? = nil) -> [UInt8] {
        var out = be(count ?? Int32(fields.count))
        for (type, bytes) in fields {
            out += be(Int32(bitPattern: type.rawValue))
            if let bytes {
                out += be(Int32(bytes.count)) + bytes
            } else {
                out += be(Int32(-1))
            }
        }
        return out
    }

    static func be<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }

    /// A binary one-dimensional array of `element` values.
    static func array(_ items: [[UInt8]?], element: PostgresDataType = .text, dims: Int32 = 1) -> [UInt8] {
        var out = be(dims) + be(Int32(items.contains { $0 == nil } ? 1 : 0)) + be(Int32(bitPattern: element.rawValue))
        if dims == 0 { return out }
        for _ in 0..<dims { out += be(Int32(items.count)) + be(Int32(1)) }
        for item in items {
            if let item { out += be(Int32(item.count)) + item } else { out += be(Int32(-1)) }
        }
        return out
    }

    static func read<T>(_ bytes: [UInt8], _ body: (inout RecordFields) throws -> T) throws -> T {
        try bytes.withUnsafeBytes { raw in
            var fields = try RecordFields(raw)
            return try body(&fields)
        }
    }

    @Test func readsEachTypeItKnows() throws {
        let id = UUID()
        let micros: Int64 = 817_000_000_123_000  // 2025-11-22T…, microseconds since 2000
        let bytes = Self.record([
            (.uuid, withUnsafeBytes(of: id.uuid) { Array($0) }),
            (.text, Array("héllo".utf8)), (.varchar, nil),
            (.float8, Self.be(0.875.bitPattern)),
            (.int4, Self.be(Int32(-7))), (.int8, Self.be(Int64(1) << 40)),
            (.timestamptz, Self.be(micros)), (.timestamptz, nil),
            (.textArray, Self.array([Array("a".utf8), [], Array("ü \"q\"".utf8)])),
            (.textArray, Self.array([], dims: 0)),
        ])
        try Self.read(bytes) { f in
            #expect(try f.uuid() == id)
            #expect(try f.text().map { String(decoding: $0, as: UTF8.self) } == "héllo")
            #expect(try f.text() == nil)
            #expect(try f.double() == 0.875)
            #expect(try f.int() == -7)
            #expect(try f.int() == 1 << 40)
            #expect(try f.date() == Date(timeIntervalSince1970: 946_684_800 + Double(micros) / 1_000_000))
            #expect(try f.date() == nil)
            var elements: [String] = []
            try f.textArray { elements.append(String(decoding: $0, as: UTF8.self)) }
            #expect(elements == ["a", "", "ü \"q\""])
            try f.textArray { _ in Issue.record("an empty array has no elements") }
            #expect(throws: RowShapeError.self) { _ = try f.text() }  // no fields left
        }
    }

    @Test func refusesAFieldOfAnotherType() throws {
        let cases: [(PostgresDataType, [UInt8], (inout RecordFields) throws -> Void)] = [
            (.int4, Self.be(Int32(1)), { _ = try $0.text() }),
            (.text, Array("x".utf8), { _ = try $0.uuid() }),
            (.float4, Self.be(UInt32(0)), { _ = try $0.double() }),
            (.int2, Self.be(Int16(1)), { _ = try $0.int() }),
            (.timestamp, Self.be(Int64(0)), { _ = try $0.date() }),
            (.int4Array, Self.array([Self.be(Int32(1))], element: .int4), { try $0.textArray { _ in } }),
        ]
        for (type, bytes, read) in cases {
            #expect(throws: RowShapeError.self, "\(type)") { try Self.read(Self.record([(type, bytes)]), read) }
        }
    }

    @Test func refusesWrongLengthsAndNullsWhereAValueIsNeeded() throws {
        let cases: [([UInt8], (inout RecordFields) throws -> Void)] = [
            (Self.record([(.uuid, [1, 2, 3])]), { _ = try $0.uuid() }),
            (Self.record([(.uuid, nil)]), { _ = try $0.uuid() }),
            (Self.record([(.float8, [0, 0, 0, 0])]), { _ = try $0.double() }),
            (Self.record([(.float8, nil)]), { _ = try $0.double() }),
            (Self.record([(.int4, [0, 0])]), { _ = try $0.int() }),
            (Self.record([(.int8, nil)]), { _ = try $0.int() }),
            (Self.record([(.timestamptz, [0, 0, 0, 0])]), { _ = try $0.date() }),
            (Self.record([(.textArray, nil)]), { try $0.textArray { _ in } }),
        ]
        for (bytes, read) in cases {
            #expect(throws: RowShapeError.self) { try Self.read(bytes, read) }
        }
    }

    /// Short buffers, a field count the bytes do not hold, a length past the end, a negative
    /// length other than NULL's -1: each refused before anything is read out of bounds.
    @Test func refusesBytesThatDoNotHoldWhatTheySay() throws {
        let text = Self.record([(.text, Array("abc".utf8))])
        var cut = text
        cut.removeLast()
        var negative = Self.record([(.text, [])])
        negative.replaceSubrange(8..<12, with: Self.be(Int32(-2)))
        let cases: [[UInt8]] = [
            [], [0, 0, 1],  // no field count
            Self.be(Int32(-1)),  // a negative field count
            Self.record([], count: 1),  // a field announced, none there
            Array(text.prefix(10)),  // a field's header cut short
            cut,  // its bytes cut short
            negative,
        ]
        for bytes in cases {
            #expect(throws: RowShapeError.self, "\(bytes)") { try Self.read(bytes) { _ = try $0.text() } }
        }
    }

    /// Only a one-dimensional `text[]` without NULLs is read; anything else is refused whole,
    /// before `body` sees an element.
    @Test func refusesArraysItDoesNotRead() throws {
        var long = Self.array([Array("ab".utf8)])
        long.append(0)  // a byte past the last element
        var overlong = Self.array([Array("ab".utf8), Array("cd".utf8)])
        overlong.replaceSubrange(26..<30, with: Self.be(Int32(50)))  // the second element's length
        let cases: [[UInt8]] = [
            Self.array([Array("a".utf8), nil]),  // a NULL element
            Self.array([Array("a".utf8)], dims: 2),
            Self.array([Array("a".utf8)], element: .bytea),
            Array(Self.array([Array("abc".utf8)]).dropLast()),
            long, overlong,
            [0, 0, 0, 1],  // a header cut short
        ]
        for bytes in cases {
            var seen = 0
            #expect(throws: RowShapeError.self, "\(bytes)") {
                try Self.read(Self.record([(.textArray, bytes)])) { try $0.textArray { _ in seen += 1 } }
            }
            #expect(seen == 0)
        }
    }

    /// A cell is read as a composite only when it is one (binary, `record`, not NULL), and only
    /// when its reader reads every field: fewer means the statement and the reader disagree.
    @Test func aCellIsReadWholeAndOnlyWhenItIsARecord() throws {
        let bytes = Self.record([(.text, Array("a".utf8)), (.text, Array("b".utf8))])
        func cell(_ bytes: [UInt8]?, _ type: PostgresDataType = .record, _ format: PostgresFormat = .binary) -> PostgresCell {
            PostgresCell(bytes: bytes.map { ByteBuffer(bytes: $0) }, dataType: type, format: format, columnName: "row", columnIndex: 0)
        }
        let both = try RecordFields.read(cell(bytes)) { f in
            try [f.text(), f.text()].map { String(decoding: $0!, as: UTF8.self) }
        }
        #expect(both == ["a", "b"])
        #expect(throws: RowShapeError.self) { try RecordFields.read(cell(bytes)) { _ = try $0.text() } }
        #expect(throws: RowShapeError.self) { try RecordFields.read(cell(bytes, .text)) { _ in } }
        #expect(throws: RowShapeError.self) { try RecordFields.read(cell(bytes, .record, .text)) { _ in } }
        #expect(throws: RowShapeError.self) { try RecordFields.read(cell(nil)) { _ in } }
    }

    /// With the label marked unreliable (rows from `RowCallbackStatements`), binary bytes
    /// labelled text are read as what they are, and a composite that really is text (its text
    /// form, `(a,b)`) is refused rather than misread.
    @Test func anUnreliableLabelReadsBinaryAndRefusesText() throws {
        let bytes = Self.record([(.text, Array("a".utf8)), (.text, Array("b".utf8))])
        func cell(_ bytes: [UInt8]?, _ type: PostgresDataType = .record) -> PostgresCell {
            PostgresCell(bytes: bytes.map { ByteBuffer(bytes: $0) }, dataType: type, format: .text, columnName: "row", columnIndex: 0)
        }
        let both = try RecordFields.read(cell(bytes), formatLabel: .unreliable) { f in
            try [f.text(), f.text()].map { String(decoding: $0!, as: UTF8.self) }
        }
        #expect(both == ["a", "b"])
        for text in ["(a,b)", "()", "(,)", "(\"a\",b)"] {
            #expect(throws: RowShapeError.self) {
                try RecordFields.read(cell(Array(text.utf8)), formatLabel: .unreliable) { f in
                    _ = try [f.text(), f.text()]
                }
            }
        }
        #expect(throws: RowShapeError.self) { try RecordFields.read(cell(bytes, .text), formatLabel: .unreliable) { _ in } }
    }
}
