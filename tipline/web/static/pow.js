/* The web form's proof of work (keys/work.py): find a nonce such that
   SHA-256(challenge ":" nonce) starts with `bits` zero bits, then enable the send button.
   A static file, because the CSP allows no inline script. */
(function () {
  "use strict";
  var form = document.getElementById("report-form");
  if (!form || !window.crypto || !window.crypto.subtle) {
    return;
  }
  var challenge = form.getAttribute("data-challenge");
  var bits = parseInt(form.getAttribute("data-bits"), 10);
  var nonceField = document.getElementById("nonce");
  var button = document.getElementById("send");
  var status = document.getElementById("pow-status");
  var encoder = new TextEncoder();

  function leadingZeros(bytes) {
    for (var i = 0; i < bits; i++) {
      if (bytes[i >> 3] & (0x80 >> (i & 7))) {
        return false;
      }
    }
    return true;
  }

  async function solve() {
    for (var nonce = 0; ; nonce++) {
      var digest = await crypto.subtle.digest("SHA-256", encoder.encode(challenge + ":" + nonce));
      if (leadingZeros(new Uint8Array(digest))) {
        return String(nonce);
      }
    }
  }

  solve().then(function (nonce) {
    nonceField.value = nonce;
    button.disabled = false;
    status.textContent = status.getAttribute("data-done");
  });
})();
