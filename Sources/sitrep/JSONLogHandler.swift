import Foundation
import Logging
import SitrepRuntime

/// swift-log handler writing one JSON object per line to stdout: time, level, message, label and
/// metadata (request id, operation, principal id — never tokens).
struct JSONLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level
    var metadataProvider: Logger.MetadataProvider?
    let label: String

    init(label: String, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.logLevel = level
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String,
        function: String, line: UInt
    ) {
        var w = JSONWriter(capacity: 256)
        w.raw("{\"time\":")
        w.dateTime(Date())
        w.raw(",\"level\":")
        w.string(level.rawValue)
        w.raw(",\"message\":")
        w.string(message.description)
        w.raw(",\"logger\":")
        w.string(label)
        var all = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty { all.merge(provided) { $1 } }
        if let explicit { all.merge(explicit) { $1 } }
        for key in all.keys.sorted() {
            w.raw(",")
            w.string(key)
            w.raw(":")
            w.string(all[key]!.description)
        }
        w.raw("}\n")
        let bytes = w.bytes
        // One write(2) per line: lines from concurrent requests never interleave.
        bytes.withUnsafeBufferPointer { buf in
            _ = write(STDOUT_FILENO, buf.baseAddress, buf.count)
        }
    }
}
