import Foundation
import Generated
import Logging
import PostgresNIO
import SitrepRuntime

/// Realistic demo data so a fresh dashboard has something to show. Safe to run twice: every row
/// is keyed so a second run adds nothing.
public enum DemoData {
    struct Template {
        let category: SignalCategory
        let title: String
        let summary: String
        let tags: [String]
        let region: String
    }

    static let templates: [Template] = [
        .init(
            category: .economic, title: "Brent crude moves after Red Sea shipping disruption",
            summary: "Futures react as container carriers reroute; freight and insurance costs for Gulf importers expected to rise.",
            tags: ["oil", "shipping"], region: "Middle East"),
        .init(
            category: .security, title: "Phishing campaign impersonates government payment portal",
            summary: "The national CERT reports look-alike domains harvesting credentials and card details.", tags: ["phishing", "payments"],
            region: "GCC"),
        .init(
            category: .geopolitical, title: "Regional foreign ministers meet on maritime security",
            summary: "Communiqué expected on joint patrols and information sharing in the Strait of Hormuz.", tags: ["diplomacy", "maritime"],
            region: "Gulf"),
        .init(
            category: .technology, title: "Cloud provider announces sovereign region in the Emirates",
            summary: "New region promises in-country key management and data residency for government workloads.", tags: ["cloud", "sovereignty"],
            region: "UAE"),
        .init(
            category: .regulatory, title: "Central bank consults on AI model risk guidance",
            summary: "Draft guidance covers model inventories, validation and human oversight for financial institutions.",
            tags: ["ai", "regulation"], region: "UAE"),
        .init(
            category: .health, title: "Respiratory infections rise ahead of winter season",
            summary: "Health authority urges vaccination; hospital occupancy within normal seasonal range.", tags: ["public-health"], region: "GCC"),
        .init(
            category: .climate, title: "Heat advisory extended for coastal areas",
            summary: "Temperatures above seasonal norms expected for five more days; outdoor work restrictions apply.", tags: ["heat", "weather"],
            region: "UAE"),
        .init(
            category: .reputational, title: "Social media claims about service outage gain traction",
            summary: "Unverified posts allege a data leak; no evidence found so far, monitoring continues.",
            tags: ["social-media", "misinformation"], region: "Global"),
    ]

    /// `count` new signals over the last seven days in one statement (ids are UUIDv7 made in SQL);
    /// numbered after the bulk rows already there, so seeding again adds rows instead of colliding.
    static func bulkSignals(_ count: Int, now: Date, on conn: PostgresConnection, logger: Logger) async throws -> Int {
        let titles = templates.map(\.title)
        let summaries = templates.map(\.summary)
        let categories = templates.map(\.category.rawValue)
        let regions = templates.map(\.region)
        let rows = try await conn.query(
            """
            WITH t AS (SELECT \(titles)::text[] AS titles, \(summaries)::text[] AS summaries,
                              \(categories)::text[] AS categories, \(regions)::text[] AS regions,
                              (SELECT coalesce(max(substr(source_id, 6)::bigint) + 1, 0) FROM signals WHERE source = 'demo-bulk') AS offset_by)
            INSERT INTO signals (id, source, source_id, title, summary, source_url, category, severity, confidence,
                                 model_version, tags, region, published_at, content_hash, status)
            SELECT sitrep_uuid_v7(), 'demo-bulk', 'bulk-' || (i + t.offset_by), t.titles[1 + i % 8], t.summaries[1 + i % 8],
                   'https://news.example.org/bulk/' || i, t.categories[1 + i % 8],
                   (ARRAY['low','low','medium','medium','medium','high','high','critical'])[1 + (i * 7 + i / 8) % 8],
                   0.55 + ((i * 37) % 45) / 100.0, 'sitrep-classifier-2026.11.1', ARRAY['demo', 'bulk'],
                   t.regions[1 + i % 8], \(now)::timestamptz - (i * interval '7 days' / \(count)) - interval '1 minute',
                   encode(sha256(('bulk-' || (i + t.offset_by))::bytea), 'hex'),
                   (ARRAY['new','new','new','acknowledged','escalated','dismissed'])[1 + (i * 5) % 6]
            FROM generate_series(0, \(count) - 1) AS i, t
            ON CONFLICT (source, source_id) DO NOTHING
            RETURNING 1
            """, logger: logger)
        var n = 0
        for try await _ in rows { n += 1 }
        return n
    }

    /// Inserts the demo rows; returns a one-line summary.
    public static func seed(client: PostgresClient, signals count: Int, logger: Logger, now: Date = Date()) async throws -> String {
        var created = 0
        let severities: [Severity] = [.low, .low, .medium, .medium, .medium, .high, .high, .critical]
        let statuses: [SignalStatus] = [.new, .new, .new, .acknowledged, .escalated, .dismissed]
        try await client.withTransaction(logger: logger) { conn in
            if count > 2000 {
                // Benchmark volumes: one set-based insert instead of a round trip per row.
                created = try await bulkSignals(count, now: now, on: conn, logger: logger)
            }
            for i in 0..<(count > 2000 ? 0 : count) {
                let t = templates[i % templates.count]
                let severity = severities[(i * 7 + i / 8) % severities.count]
                let status = statuses[(i * 5) % statuses.count]
                let published = now.addingTimeInterval(-Double(i) * (7 * 86400) / Double(max(count, 1)) - 60)
                let input = SignalInput(
                    source: "demo-feed", sourceId: "demo-\(i)", title: t.title, summary: t.summary,
                    sourceUrl: "https://news.example.org/items/\(i)", category: t.category, severity: severity,
                    confidence: 0.55 + Double((i * 37) % 45) / 100, modelVersion: "sitrep-classifier-2026.11.1", tags: t.tags,
                    region: t.region, publishedAt: published)
                let hash = SitrepHandlers.contentHash(input)
                let rows = try await conn.query(
                    """
                    INSERT INTO signals (id, source, source_id, title, summary, source_url, category, severity, confidence,
                                         model_version, tags, region, published_at, content_hash, status, triaged_by, triaged_at,
                                         triage_note)
                    VALUES (\(UUIDv7.make(at: published)), \(input.source), \(input.sourceId), \(input.title), \(input.summary),
                            \(input.sourceUrl), \(input.category.rawValue), \(input.severity.rawValue), \(input.confidence),
                            \(input.modelVersion), \(t.tags), \(input.region), \(published), \(hash), \(status.rawValue),
                            \(status == .new ? nil : "Demo Analyst"), \(status == .new ? nil : published.addingTimeInterval(1800)),
                            \(status == .new ? nil : "Reviewed in the morning triage."))
                    ON CONFLICT (source, source_id) DO NOTHING RETURNING id
                    """, logger: logger)
                for try await _ in rows { created += 1 }
            }
            // Posture: set each domain once, with history, unless someone already set it.
            let levels: [(PostureDomain, PostureLevel, String)] = [
                (.cyber, .elevated, "Active phishing campaign against government payment portal."),
                (.physical, .normal, "No credible threats reported."),
                (.financial, .elevated, "Oil price volatility after Red Sea disruption."),
                (.operational, .normal, "All services within targets."),
                (.reputational, .elevated, "Unverified leak claims circulating on social media."),
                (.information, .normal, "No known data incidents."),
            ]
            for (domain, level, rationale) in levels {
                let rows = try await conn.query(
                    """
                    INSERT INTO posture (domain, level, rationale, set_by, set_at, version)
                    VALUES (\(domain.rawValue), \(level.rawValue), \(rationale), 'Demo Executive', \(now), 1)
                    ON CONFLICT (domain) DO UPDATE SET level = EXCLUDED.level, rationale = EXCLUDED.rationale,
                        set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at, version = posture.version + 1
                    WHERE posture.set_at IS NULL
                    RETURNING domain
                    """, logger: logger)
                var changed = false
                for try await _ in rows { changed = true }
                if changed {
                    try await conn.query(
                        """
                        INSERT INTO posture_history (id, domain, from_level, to_level, rationale, set_by, set_at)
                        VALUES (\(UUIDv7.make(at: now)), \(domain.rawValue), 'normal', \(level.rawValue), \(rationale), 'Demo Executive', \(now))
                        """, logger: logger)
                }
            }
            // A draft briefing for today, bilingual, with its first revision.
            let today = CalendarDate(WireFormat.formatDateTime(now).prefix(10).description) ?? CalendarDate(year: 2026, month: 1, day: 1)!
            let sections = [
                BriefingSection(
                    heading: "Economy", headingAr: "الاقتصاد",
                    body: "Brent rose 4.1% to $86.40 after two carriers paused Red Sea transits. "
                        + "Expect higher freight and insurance costs for imports.",
                    bodyAr: "ارتفع خام برنت بنسبة 4.1% إلى 86.40 دولارًا بعد تعليق شركتين للشحن عبورهما في البحر الأحمر. "
                        + "يُتوقع ارتفاع تكاليف الشحن والتأمين للواردات.",
                    signalIds: []),
                BriefingSection(
                    heading: "Cyber security", headingAr: "الأمن السيبراني",
                    body: "The national CERT reports a phishing campaign using look-alike domains of the government payment portal.",
                    bodyAr: "أبلغ الفريق الوطني للاستجابة لطوارئ الحاسب الآلي عن حملة تصيّد تستخدم نطاقات مشابهة لبوابة الدفع الحكومية.",
                    signalIds: []),
            ]
            let title = "Daily Leadership Briefing — \(today)"
            let titleAr = "الإحاطة اليومية للقيادة — \(today)"
            let summary = "Red Sea shipping disruption lifts oil prices; an active phishing campaign targets the payment portal."
            let summaryAr = "اضطراب الملاحة في البحر الأحمر يرفع أسعار النفط؛ حملة تصيّد نشطة تستهدف بوابة الدفع."
            let hash = SitrepHandlers.briefingContentHash(
                title: title, titleAr: titleAr, briefingDate: today, summary: summary, summaryAr: summaryAr, sections: sections)
            let sectionsJSON = String(decoding: sections.jsonBytes(capacity: 4096), as: UTF8.self)
            let briefingId = UUIDv7.make(at: now)
            let inserted = try await conn.query(
                """
                INSERT INTO briefings (id, title, title_ar, briefing_date, status, summary, summary_ar, sections, model_version, revision,
                                       content_hash, created_by, created_by_id, created_at, updated_at, version)
                SELECT \(briefingId), \(title), \(titleAr), \(today.description)::date, 'draft', \(summary), \(summaryAr),
                       \(sectionsJSON)::jsonb, 'sitrep-briefing-writer-demo', 1, \(hash), 'Sitrep Briefing Writer', 'app:demo-briefing-writer',
                       \(now), \(now), 1
                WHERE NOT EXISTS (SELECT 1 FROM briefings WHERE briefing_date = \(today.description)::date)
                RETURNING id
                """, logger: logger)
            var newBriefing = false
            for try await _ in inserted { newBriefing = true }
            if newBriefing {
                try await conn.query(
                    """
                    INSERT INTO briefing_revisions (briefing_id, revision, title, title_ar, summary, summary_ar, sections, content_hash,
                                                    created_by, created_by_id, created_at)
                    VALUES (\(briefingId), 1, \(title), \(titleAr), \(summary), \(summaryAr), \(sectionsJSON)::jsonb, \(hash),
                            'Sitrep Briefing Writer', 'app:demo-briefing-writer', \(now))
                    """, logger: logger)
            }
            // Briefing recipients (local stand-in numbers; nothing real is ever messaged in development).
            let recipients: [(String, String, String?, String, [String])] = [
                ("Dr. Aisha Al Nuaimi", "+971552345678", "aisha@dataoffice.example.gov", "en", ["whatsapp", "sms", "email"]),
                ("خالد المزروعي", "+971501112233", nil, "ar", ["whatsapp", "sms"]),
                ("Fatima Al Suwaidi", "+971504445566", "fatima@dataoffice.example.gov", "en", ["email"]),
            ]
            for (name, phone, email, language, channels) in recipients {
                try await conn.query(
                    """
                    INSERT INTO recipients (id, name, phone, email, language, channels)
                    VALUES (\(UUIDv7.make(at: now)), \(name), \(phone), \(email), \(language), \(channels))
                    ON CONFLICT (phone) DO NOTHING
                    """, logger: logger)
            }
            // Actions with owners and due dates.
            let actions: [(String, String, String, Double, String)] = [
                ("Brief the minister on Red Sea shipping exposure", "omar.haddad", "high", 1, "open"),
                ("Publish phishing advisory to all staff", "layla.nasser", "critical", -1, "in_progress"),
                ("Review sovereign cloud region offer", "khalid.rahman", "medium", 6, "open"),
                ("Prepare response lines on leak claims", "sara.almansoori", "high", 2, "blocked"),
                ("Update heat-stress field guidance", "omar.haddad", "low", 10, "done"),
            ]
            for (title, owner, priority, days, status) in actions {
                try await conn.query(
                    """
                    INSERT INTO actions (id, title, description, owner_id, owner_name, assigned_by, assigned_by_name, due_date, priority,
                                         status, progress, completed_at, created_at, updated_at, version)
                    SELECT \(UUIDv7.make(at: now)), \(title), '', \(owner), \(Self.displayName(owner)), 'demo-executive', 'Demo Executive',
                           current_date + \(Int32(days)), \(priority), \(status), \(status == "done" ? 100 : 0),
                           \(status == "done" ? now : nil), \(now), \(now), 1
                    WHERE NOT EXISTS (SELECT 1 FROM actions WHERE title = \(title))
                    """, logger: logger)
            }
        }
        // The new signals' counts, folded now rather than by the first server's first fold.
        try await SignalCountsFolder(db: client, logger: logger).fold()
        return "demo data: \(created) new signals (of \(count)), posture for 6 domains, a draft briefing, 5 actions, 3 recipients"
    }

    /// `omar.haddad` → `Omar Haddad`.
    static func displayName(_ login: String) -> String {
        login.split(separator: ".").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: " ")
    }
}
