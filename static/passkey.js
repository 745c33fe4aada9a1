// Latchkey passkeys: the WebAuthn calls for the login, second-factor and account pages.
// Served from /static/passkey.js (no inline script: the pages' CSP allows only 'self').
// The server keeps every ceremony's state; this script only moves bytes between the
// server's JSON (base64url) and the browser's WebAuthn API (ArrayBuffers), then submits
// an ordinary form. Pages work without it for password users: passkey controls stay
// hidden unless this script runs in a browser with WebAuthn.
"use strict";

(function () {
  function toBuffer(b64url) {
    var s = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(json) {
    var o = json.publicKey;
    o.challenge = toBuffer(o.challenge);
    o.user.id = toBuffer(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
    return o;
  }

  function requestOptions(json) {
    var o = json.publicKey;
    o.challenge = toBuffer(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
    return o;
  }

  function registrationJson(cred) {
    return JSON.stringify({
      id: cred.id,
      rawId: toBase64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toBase64url(cred.response.attestationObject),
        clientDataJSON: toBase64url(cred.response.clientDataJSON)
      },
      extensions: {}
    });
  }

  function assertionJson(cred) {
    return JSON.stringify({
      id: cred.id,
      rawId: toBase64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toBase64url(cred.response.authenticatorData),
        clientDataJSON: toBase64url(cred.response.clientDataJSON),
        signature: toBase64url(cred.response.signature),
        userHandle: toBase64url(cred.response.userHandle)
      },
      extensions: {}
    });
  }

  function showError(message) {
    var el = document.getElementById("passkey-error");
    if (!el) return;
    el.textContent = message;
    el.hidden = false;
  }

  function explain(err) {
    if (err && err.name === "NotAllowedError") {
      return "The passkey request was cancelled or timed out. Try again, or use your password.";
    }
    if (err && err.name === "InvalidStateError") {
      return "This device already holds a passkey for your account.";
    }
    if (err && err.message) return err.message;
    return "Something went wrong with the passkey. Try again.";
  }

  // POSTs a form-encoded body; resolves to the JSON options, rejects with an Error whose
  // message is the server's.
  function startCeremony(url, fields) {
    var body = new URLSearchParams(fields);
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body.toString()
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) {
        if (res.ok) return json;
        if (json.reauth) window.location.assign(json.reauth);
        throw new Error(json.error || "The server refused the passkey request.");
      });
    });
  }

  function field(form, name) {
    var el = form.querySelector('input[name="' + name + '"]');
    return el ? el.value : "";
  }

  var supported = !!(window.PublicKeyCredential && navigator.credentials);

  // Login page: "Sign in with a passkey", and the browser's autofill (conditional UI).
  function loginPage() {
    var box = document.getElementById("passkey-signin");
    var form = document.getElementById("passkey-form");
    if (!box || !form) return;
    if (!supported) return;
    box.hidden = false;
    var pending = null;
    // Ceremony starts run one after the other: each sets this browser's ceremony cookie,
    // so the newest request must also be the last one answered.
    var starts = Promise.resolve();

    function run(mediation) {
      if (pending) pending.abort();
      var controller = new AbortController();
      pending = controller;
      var fields = { csrf: field(form, "csrf"), request: field(form, "request") };
      var started = starts.then(function () {
        return startCeremony("/login/passkey/start", fields);
      });
      starts = started.catch(function () {});
      return started
        .then(function (json) {
          var options = { publicKey: requestOptions(json), signal: controller.signal };
          if (mediation) options.mediation = mediation;
          return navigator.credentials.get(options);
        })
        .then(function (cred) {
          if (!cred) return;
          form.querySelector('input[name="credential"]').value = assertionJson(cred);
          form.submit();
        })
        .catch(function (err) {
          if (err && err.name === "AbortError") return;
          if (mediation === "conditional") return;
          showError(explain(err));
        });
    }

    document.getElementById("passkey-button").addEventListener("click", function () {
      run(null);
    });
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
        if (ok) run("conditional");
      });
    }
  }

  // Second-factor page: "Use a passkey".
  function mfaPage() {
    var box = document.getElementById("passkey-mfa");
    var form = document.getElementById("passkey-mfa-form");
    if (!box || !form) return;
    if (!supported) {
      showError("This browser cannot use passkeys.");
      return;
    }
    box.hidden = false;
    document.getElementById("passkey-mfa-button").addEventListener("click", function () {
      startCeremony("/login/mfa/passkey/start", { csrf: field(form, "csrf") })
        .then(function (json) {
          return navigator.credentials.get({ publicKey: requestOptions(json) });
        })
        .then(function (cred) {
          form.querySelector('input[name="code"]').value = assertionJson(cred);
          form.submit();
        })
        .catch(function (err) { showError(explain(err)); });
    });
  }

  // Account page: "Add a passkey".
  function accountPage() {
    var form = document.getElementById("passkey-register-form");
    if (!form) return;
    if (!supported) return;
    form.hidden = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var name = form.querySelector('input[name="name"]').value;
      startCeremony("/account/passkeys/start", { csrf: field(form, "csrf"), name: name })
        .then(function (json) {
          return navigator.credentials.create({ publicKey: creationOptions(json) });
        })
        .then(function (cred) {
          form.querySelector('input[name="credential"]').value = registrationJson(cred);
          form.submit();
        })
        .catch(function (err) { showError(explain(err)); });
    });
  }

  // Password reset form: "Use a passkey and set the new password" (the passkey is the
  // second factor; the new password travels in the same form).
  function resetPage() {
    var box = document.getElementById("passkey-reset");
    var form = document.getElementById("reset-form");
    if (!box || !form) return;
    if (!supported) {
      showError("This browser cannot use passkeys.");
      return;
    }
    box.hidden = false;
    document.getElementById("passkey-reset-button").addEventListener("click", function () {
      if (!form.reportValidity()) return;
      var fields = { csrf: field(form, "csrf"), token: field(form, "token") };
      startCeremony("/reset-password/passkey/start", fields)
        .then(function (json) {
          return navigator.credentials.get({ publicKey: requestOptions(json) });
        })
        .then(function (cred) {
          form.querySelector('input[name="credential"]').value = assertionJson(cred);
          form.submit();
        })
        .catch(function (err) { showError(explain(err)); });
    });
  }

  loginPage();
  mfaPage();
  accountPage();
  resetPage();
})();
