// The web form's "use my phone's location" button: fills the hidden lat/lon fields from the
// browser's geolocation, only when the informant presses it (the browser asks them first).
(function () {
  "use strict";
  var button = document.getElementById("use-location");
  var status = document.getElementById("location-status");
  var lat = document.getElementById("lat");
  var lon = document.getElementById("lon");
  if (!button || !status || !lat || !lon || !navigator.geolocation) {
    return; // no button: the place is typed
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    status.textContent = button.dataset.asking || "";
    navigator.geolocation.getCurrentPosition(
      function (position) {
        lat.value = position.coords.latitude.toFixed(6);
        lon.value = position.coords.longitude.toFixed(6);
        status.textContent = button.dataset.done || "";
      },
      function () {
        lat.value = "";
        lon.value = "";
        status.textContent = button.dataset.failed || "";
      },
      { enableHighAccuracy: true, timeout: 20000, maximumAge: 60000 }
    );
  });
})();
