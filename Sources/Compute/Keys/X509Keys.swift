import Crypto
import Foundation
import X509
import _CryptoExtras

/// Nova's `x509` keypairs: a certificate (Windows guests log in with it) whose fingerprint is
/// the SHA-1 of its DER bytes, generated with an RSA key when the user gives none.
enum X509Keypair {
    enum Failure: Error { case invalid(String) }

    /// The certificate's PEM as given, and its fingerprint.
    static func parse(_ pem: String) throws -> (certificate: String, fingerprint: String) {
        let certificate: Certificate
        do { certificate = try Certificate(pemEncoded: pem) } catch { throw Failure.invalid("not a PEM X.509 certificate") }
        return (pem, try fingerprint(certificate))
    }

    /// A self-signed certificate for `commonName` with a new 2048-bit RSA key, valid ten years,
    /// subject as Nova writes it. - Returns: both in PEM, and the certificate's fingerprint.
    static func generate(commonName: String) throws -> (certificate: String, privateKey: String, fingerprint: String) {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let name = try DistinguishedName {
            CountryName("US")
            StateOrProvinceName("CA")
            OrganizationName("OpenStack")
            OrganizationalUnitName("NovaDev")
            CommonName(commonName)
        }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: now, notValidAfter: now.addingTimeInterval(3650 * 86_400),
            issuer: name, subject: name, signatureAlgorithm: .sha256WithRSAEncryption,
            extensions: Certificate.Extensions(), issuerPrivateKey: .init(key))
        return (try certificate.serializeAsPEM().pemString, key.pemRepresentation, try fingerprint(certificate))
    }

    static func fingerprint(_ certificate: Certificate) throws -> String {
        Insecure.SHA1.hash(data: try certificate.serializeAsPEM().derBytes).map { String(format: "%02x", $0) }.joined(separator: ":")
    }
}
