/// A parsed JSON document, as produced by `JSONParser.parse`.
///
/// Numbers keep the literal text they were written with (see `JSONNumber`), objects keep their
/// key order (see `JSONObject`). Equality is structural: numbers compare by literal text and
/// objects compare key order as well as members.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

/// A JSON number, kept as the literal text it was written with so that big integers and
/// high-precision decimals survive a parse untouched.
public struct JSONNumber: Sendable, Equatable {
    /// The literal as written, e.g. `"-12.5e3"`.
    public let text: String
    /// True if the literal has no fraction and no exponent (`"12"`, `"-0"`; not `"1.0"`, `"1e2"`).
    public let isInteger: Bool

    /// Wraps a literal. The text is not validated; `JSONParser` only ever produces valid ones.
    public init(text: String) {
        self.text = text
        var integer = true
        for byte in text.utf8 where byte == UInt8(ascii: ".") || byte | 0x20 == UInt8(ascii: "e") {
            integer = false
            break
        }
        self.isInteger = integer
    }

    /// Used by the parser, which already knows whether the literal is an integer.
    init(text: String, isInteger: Bool) {
        self.text = text
        self.isInteger = isInteger
    }

    /// The exact value if the literal is a pure integer literal that fits in `Int64`, else nil.
    public var int64: Int64? {
        isInteger ? Int64(text) : nil
    }

    /// The value as the nearest `Double` (±infinity for literals beyond its range).
    public var double: Double {
        Double(text) ?? .nan
    }
}

/// A JSON object that keeps the order its keys were written in. Lookups go through a
/// dictionary, so they are O(1) on average. Duplicate keys are a parse error.
public struct JSONObject: Sendable, Equatable {
    /// The keys in the order they were first written.
    public private(set) var keys: [String]
    private var storage: [String: JSONValue]

    /// An empty object.
    public init() {
        keys = []
        storage = [:]
    }

    /// An object with the given members, in the given order. Keys must be unique.
    public init(uniqueKeysWithValues members: some Sequence<(String, JSONValue)>) {
        self.init()
        for (key, value) in members {
            let isNew = insertNew(key, value)
            precondition(isNew, "duplicate key \(key.debugDescription) in JSONObject")
        }
    }

    /// The member named `key`. Setting a new key appends it at the end, setting an existing key
    /// replaces the value in place, setting nil removes the member.
    public subscript(key: String) -> JSONValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil {
                    keys.append(key)
                }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// The number of members.
    public var count: Int { keys.count }

    /// Appends a member; returns false if the key was already present (its value is then
    /// replaced in place, which callers treat as an error).
    mutating func insertNew(_ key: String, _ value: JSONValue) -> Bool {
        if storage.updateValue(value, forKey: key) != nil {
            return false
        }
        keys.append(key)
        return true
    }

    init(minimumCapacity: Int) {
        keys = []
        keys.reserveCapacity(minimumCapacity)
        storage = Dictionary(minimumCapacity: minimumCapacity)
    }
}
