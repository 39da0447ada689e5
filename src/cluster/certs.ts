import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface ClusterCerts {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  /** Service-account token signing key pair (no certificate needed). */
  saKey: string;
  saPub: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * A fresh CA, an API-server serving certificate for 127.0.0.1/localhost and an admin client
 * certificate in system:masters. node:crypto cannot issue X.509 certificates, so openssl does.
 */
export function generateClusterCerts(dir: string, extraIPs: string[] = []): ClusterCerts {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = (name: string) => join(dir, name);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(
    ["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30"]
      .concat(["-subj", "/CN=netloom-local-ca"])
      .concat([
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      ]),
    dir,
  );
  const issue = (name: string, subject: string, ext: string) => {
    openssl(["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject], dir);
    writeFileSync(p(`${name}.ext`), ext);
    openssl(
      ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key"].concat([
        "-CAcreateserial",
        "-out",
        `${name}.crt`,
        "-days",
        "30",
        "-extfile",
        `${name}.ext`,
      ]),
      dir,
    );
  };
  issue(
    "server",
    "/CN=kube-apiserver",
    `subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1${extraIPs.map((ip) => `,IP:${ip}`).join("")}\nextendedKeyUsage=serverAuth\n`,
  );
  issue("admin", "/O=system:masters/CN=netloom-admin", "extendedKeyUsage=clientAuth\n");

  const sa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  writeFileSync(p("sa.key"), sa.privateKey.export({ type: "pkcs8", format: "pem" }), {
    mode: 0o600,
  });
  writeFileSync(p("sa.pub"), sa.publicKey.export({ type: "spki", format: "pem" }));
  return {
    caCert: p("ca.crt"),
    caKey: p("ca.key"),
    serverCert: p("server.crt"),
    serverKey: p("server.key"),
    adminCert: p("admin.crt"),
    adminKey: p("admin.key"),
    saKey: p("sa.key"),
    saPub: p("sa.pub"),
  };
}
