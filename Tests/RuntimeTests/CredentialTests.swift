import Testing

@testable import SitrepRuntime

/// How the runtime reads `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme is
/// case-insensitive, RFC 9110 §11.1).
@Suite("bearer credentials")
struct CredentialTests {
    @Test(arguments: [
        ("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer abc", "abc"), ("BEARER abc", "abc"), ("BeArEr a b", "a b"),
        ("Bearer  abc", " abc"),
    ])
    func theTokenFollowsTheSchemeAndOneSpace(value: String, token: String) {
        #expect(APIRuntime.bearerToken(value) == token)
    }

    @Test(arguments: ["Bearer", "Bearer ", "Bearerx abc", "Bearer\tabc", "Basic YWxhZGRpbjpvcGVu", "Bear abc", "", "Béarer abc", "Rearer abc"])
    func anythingElseIsNotABearerCredential(value: String) {
        #expect(APIRuntime.bearerToken(value) == nil)
    }
}
