// jose: JWT HS256 with SignJWT and jwtVerify (crypto.subtle importKey/sign/verify for HMAC,
// TextEncoder/TextDecoder, base64url through atob/btoa or Uint8Array's own methods).
// The secret comes from the plugin's configuration.
import { SignJWT, jwtVerify, decodeProtectedHeader } from "jose";

const secret = () => new TextEncoder().encode(config.secret);

export default {
  // claims: the payload; options: {subject, issuer, audience, issuedAt, expiresAt} (seconds).
  async sign(claims, options = {}) {
    let jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" });
    if (options.issuedAt !== undefined) jwt = jwt.setIssuedAt(options.issuedAt);
    else jwt = jwt.setIssuedAt();
    if (options.subject !== undefined) jwt = jwt.setSubject(options.subject);
    if (options.issuer !== undefined) jwt = jwt.setIssuer(options.issuer);
    if (options.audience !== undefined) jwt = jwt.setAudience(options.audience);
    if (options.expiresAt !== undefined) jwt = jwt.setExpirationTime(options.expiresAt);
    return await jwt.sign(secret());
  },
  // Never throws: {ok, payload, header} or {ok: false, code, name}.
  async verify(token, options = {}) {
    try {
      const { payload, protectedHeader } = await jwtVerify(token, secret(), { algorithms: ["HS256"], ...options });
      return { ok: true, payload, header: protectedHeader };
    } catch (e) {
      return { ok: false, code: e.code ?? null, name: e.name, message: e.message };
    }
  },
  header(token) {
    return decodeProtectedHeader(token);
  },
};
