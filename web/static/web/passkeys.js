// Passkeys on the pages (docs/security.md "Passkeys"). The server's options are the WebAuthn JSON
// serialization; the browser's answer goes back, as JSON text, in an ordinary form post. A file of its
// own: the pages' Content-Security-Policy allows no inline script.
(function () {
  "use strict";

  function toBuffer(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    b64 += "===".slice((b64.length + 3) % 4);
    var raw = atob(b64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, {id: toBuffer(c.id)}); });
  }

  function creationOptions(json) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: toBuffer(json.challenge),
      user: Object.assign({}, json.user, {id: toBuffer(json.user.id)}),
      excludeCredentials: descriptors(json.excludeCredentials)
    });
  }

  function requestOptions(json) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, {challenge: toBuffer(json.challenge),
                                    allowCredentials: descriptors(json.allowCredentials)});
  }

  function answer(credential) {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    var r = credential.response, out = {
      id: credential.id, rawId: toText(credential.rawId), type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {clientDataJSON: toText(r.clientDataJSON)}
    };
    if (r.attestationObject) {
      out.response.attestationObject = toText(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toText(r.authenticatorData);
      out.response.signature = toText(r.signature);
      if (r.userHandle) out.response.userHandle = toText(r.userHandle);
    }
    return out;
  }

  function problem(form, text) {
    var box = form.querySelector("[data-passkey-error]");
    if (box) { box.textContent = text; box.hidden = false; }
  }

  var CANCELLED = "No passkey was used. Try again, or use your password.";

  function supported(form) {
    if (window.PublicKeyCredential && navigator.credentials) return true;
    problem(form, "This browser cannot use passkeys.");
    return false;
  }

  function postJSON(url, form, body) {
    var token = form.elements.csrfmiddlewaretoken;
    return fetch(url, {method: "POST", credentials: "same-origin",
                       headers: {"Content-Type": "application/json", "X-CSRFToken": token ? token.value : ""},
                       body: JSON.stringify(body || {})});
  }

  function finish(form, ceremonyId, credential) {
    if (form.elements.ceremony_id) form.elements.ceremony_id.value = ceremonyId || "";
    form.elements.credential.value = JSON.stringify(answer(credential));
    form.submit();  // submit() fires no submit event: no loop
  }

  // "Sign in with a passkey" (/login): discoverable credentials, no email typed.
  var signIn = document.getElementById("passkey-sign-in");
  if (signIn) signIn.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!supported(signIn)) return;
    var ceremonyId;
    postJSON(signIn.dataset.options, signIn).then(function (response) {
      if (!response.ok) throw new Error("options " + response.status);
      return response.json();
    }).then(function (body) {
      ceremonyId = body.ceremonyId;
      return navigator.credentials.get({publicKey: requestOptions(body.options)});
    }).then(function (credential) {
      finish(signIn, ceremonyId, credential);
    }).catch(function () { problem(signIn, CANCELLED); });
  });

  // The second step of a sign-in (/login/two-factor) and step-up (/account/reauthenticate): the
  // options came with the page, in a JSON data block named by the form's data-passkey-embedded.
  Array.prototype.forEach.call(document.querySelectorAll("form[data-passkey-embedded]"), function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!supported(form)) return;
      var options = JSON.parse(document.getElementById(form.dataset.passkeyEmbedded).textContent);
      navigator.credentials.get({publicKey: requestOptions(options.options)}).then(function (credential) {
        finish(form, options.ceremonyId, credential);
      }).catch(function () { problem(form, CANCELLED); });
    });
  });

  // "Add a passkey" (/account/two-factor): the API's creation options (a fresh session is needed).
  var add = document.getElementById("passkey-add");
  if (add) add.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!supported(add)) return;
    postJSON(add.dataset.options, add).then(function (response) {
      if (response.status === 403) {
        window.location.assign(add.dataset.reauthenticate);
        throw new Error("reauthenticate");
      }
      if (!response.ok) throw new Error("options " + response.status);
      return response.json();
    }).then(function (options) {
      return navigator.credentials.create({publicKey: creationOptions(options)});
    }).then(function (credential) {
      finish(add, "", credential);
    }).catch(function (error) {
      if (error.message !== "reauthenticate") problem(add, "The passkey was not created. Try again.");
    });
  });
})();
