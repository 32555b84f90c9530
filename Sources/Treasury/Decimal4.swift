/// An exact signed decimal with four fraction digits, stored as a count of ten-thousandths in
/// an `Int64`.
///
/// Treasury balances must never pass through binary floating point: `0.1` has no exact `Double`,
/// and summing thousands of such values drifts. Four fraction digits is what the contract allows
/// (see below), so every value the contract admits is held
/// exactly and sums are exact too, with overflow reported instead of trapping or wrapping.
///
/// The range is `Int64`'s: ±922337203685477.5807, so every value of the contract's fifteen integer
/// digits (`^-?[0-9]{1,15}(\.[0-9]{1,4})?$`) fits. The parser reads up to eighteen integer digits
/// so that a longer value is reported as ``ParseError/outOfRange`` rather than as malformed, and
/// never silently truncated.
public struct Decimal4: Sendable, Hashable, Comparable, CustomStringConvertible, LosslessStringConvertible {
    /// How many stored units make one: values are held in ten-thousandths.
    public static let unitsPerOne: Int64 = 10_000

    /// The value in ten-thousandths (`1.5` is `15000`).
    public let tenThousandths: Int64

    /// Zero.
    public static let zero = Decimal4(tenThousandths: 0)
    /// The largest representable value, `922337203685477.5807`.
    public static let max = Decimal4(tenThousandths: .max)
    /// The smallest representable value, `-922337203685477.5808`.
    public static let min = Decimal4(tenThousandths: .min)

    /// A value from its count of ten-thousandths.
    public init(tenThousandths: Int64) {
        self.tenThousandths = tenThousandths
    }

    /// Why a text is not a `Decimal4`.
    public enum ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The text does not match `^-?[0-9]{1,18}(\.[0-9]{1,4})?$` (ASCII digits only; no `+`,
        /// spaces, thousands separators, exponent, or bare `.5` / `5.`).
        case malformed
        /// The text matches the pattern but its value does not fit in ``Decimal4/min`` ...
        /// ``Decimal4/max``.
        case outOfRange

        public var description: String {
            switch self {
            case .malformed:
                "not a decimal of the form -123456.7890 (1–18 integer digits, optionally a point and 1–4 fraction digits)"
            case .outOfRange: "outside the supported range -922337203685477.5808 ... 922337203685477.5807"
            }
        }
    }

    /// Parses the contract's decimal form `^-?[0-9]{1,18}(\.[0-9]{1,4})?$` exactly, without any
    /// floating-point step.
    ///
    /// `-0` and `-0.00` are accepted and equal ``zero``.
    public init(parsing text: some StringProtocol) throws(ParseError) {
        let utf8 = Array(text.utf8)
        var index = 0
        var negative = false
        if index < utf8.count, utf8[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        var integer: UInt64 = 0
        var integerDigits = 0
        while index < utf8.count, let digit = Self.digit(utf8[index]) {
            integerDigits += 1
            guard integerDigits <= 18 else { throw .malformed }
            integer = integer * 10 + digit  // at most 18 digits: cannot overflow UInt64
            index += 1
        }
        guard integerDigits >= 1 else { throw .malformed }
        var fraction: UInt64 = 0
        var fractionDigits = 0
        if index < utf8.count {
            guard utf8[index] == UInt8(ascii: ".") else { throw .malformed }
            index += 1
            while index < utf8.count, let digit = Self.digit(utf8[index]) {
                fractionDigits += 1
                guard fractionDigits <= 4 else { throw .malformed }
                fraction = fraction * 10 + digit
                index += 1
            }
            guard fractionDigits >= 1, index == utf8.count else { throw .malformed }
        }
        for _ in fractionDigits..<4 { fraction *= 10 }
        let (scaled, overflowScaling) = integer.multipliedReportingOverflow(by: UInt64(Self.unitsPerOne))
        let (magnitude, overflowAdding) = scaled.addingReportingOverflow(fraction)
        guard !overflowScaling, !overflowAdding else { throw .outOfRange }
        if negative {
            // Int64.min's magnitude is one more than Int64.max.
            guard magnitude <= Int64.max.magnitude + 1 else { throw .outOfRange }
            tenThousandths = magnitude == Int64.min.magnitude ? .min : -Int64(magnitude)
        } else {
            guard magnitude <= Int64.max.magnitude else { throw .outOfRange }
            tenThousandths = Int64(magnitude)
        }
    }

    /// Parses like ``init(parsing:)``, `nil` when the text is malformed or out of range.
    public init?(_ description: String) {
        guard let value = try? Decimal4(parsing: description) else { return nil }
        self = value
    }

    /// The sum, and whether it overflowed (then `partialValue` is the wrapped result).
    public func addingReportingOverflow(_ other: Decimal4) -> (partialValue: Decimal4, overflow: Bool) {
        let (sum, overflow) = tenThousandths.addingReportingOverflow(other.tenThousandths)
        return (Decimal4(tenThousandths: sum), overflow)
    }

    /// The exact sum, or `nil` when it falls outside ``min`` ... ``max``: running totals must
    /// fail loudly rather than wrap.
    public func adding(_ other: Decimal4) -> Decimal4? {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? nil : sum
    }

    /// The canonical text: at least two fraction digits (money's usual scale, as in the
    /// contract's `615250.50`), more only when the value needs them, never trailing zeros beyond
    /// the second digit. `1` is `1.00`, `0.5` is `0.50`, `1.234` is `1.234`, `-0.0001` is
    /// `-0.0001`. The text always matches the contract's pattern and parses back to the same
    /// value.
    public var description: String { formatted(minimumFractionDigits: 2) }

    /// The exact text with at least `minimumFractionDigits` (clamped to 0 ... 4) fraction digits
    /// and at most four; further digits appear only when non-zero. With `4` every value shows
    /// its full scale (`1.0000`); with `0` whole values have no point (`12`).
    public func formatted(minimumFractionDigits: Int) -> String {
        let minimum = Swift.min(Swift.max(minimumFractionDigits, 0), 4)
        let magnitude = tenThousandths.magnitude
        let integer = magnitude / UInt64(Self.unitsPerOne)
        var fraction = magnitude % UInt64(Self.unitsPerOne)
        var digits = 4
        while digits > minimum, fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        var text = tenThousandths < 0 ? "-" : ""
        text += String(integer)
        if digits > 0 {
            let fractionText = String(fraction)
            text += "." + String(repeating: "0", count: digits - fractionText.count) + fractionText
        }
        return text
    }

    public static func < (lhs: Decimal4, rhs: Decimal4) -> Bool {
        lhs.tenThousandths < rhs.tenThousandths
    }

    private static func digit(_ byte: UInt8) -> UInt64? {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) ? UInt64(byte - UInt8(ascii: "0")) : nil
    }
}
