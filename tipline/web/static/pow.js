/* The anonymous forms' proof of work (keys/work.py): for each form carrying a challenge
   (/bao-tin, /tra-cuu and its answer form), find a nonce such that SHA-256(challenge ":" nonce)
   starts with `data-bits` zero bits, then enable the form's button.
   A static file, because the CSP allows no inline script. */
(function () {
  "use strict";
  if (!window.crypto || !window.crypto.subtle) {
    return;
  }
  var encoder = new TextEncoder();

  function leadingZeros(bytes, bits) {
    for (var i = 0; i < bits; i++) {
      if (bytes[i >> 3] & (0x80 >> (i & 7))) {
        return false;
      }
    }
    return true;
  }

  async function solve(challenge, bits) {
    for (var nonce = 0; ; nonce++) {
      var digest = await crypto.subtle.digest("SHA-256", encoder.encode(challenge + ":" + nonce));
      if (leadingZeros(new Uint8Array(digest), bits)) {
        return String(nonce);
      }
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("form[data-challenge]"), function (form) {
    var nonceField = form.querySelector("input[name=nonce]");
    var button = form.querySelector("button[type=submit]");
    var status = form.querySelector(".pow-status");
    solve(form.getAttribute("data-challenge"), parseInt(form.getAttribute("data-bits"), 10)).then(
      function (nonce) {
        nonceField.value = nonce;
        button.disabled = false;
        if (status) {
          status.textContent = status.getAttribute("data-done");
        }
      }
    );
  });
})();
