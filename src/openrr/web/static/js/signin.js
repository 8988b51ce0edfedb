// The sign-in page: account id + key → an access token from the STS, kept in sessionStorage.

import { fetchToken } from "./api.js";
import { loadAuth, safeNext, saveAuth } from "./auth.js";
import { byId, errorText, showMessage } from "./ui.js";

const params = new URLSearchParams(location.search);
const next = safeNext(params.get("next"));

const form = byId("signin");
const idInput = byId("account-id");
const keyInput = byId("account-key");
const submit = byId("signin-submit");
const errorBox = byId("signin-error");

if (loadAuth() && !params.has("reason")) {
  location.replace(next);
} else {
  if (params.get("reason") === "expired") {
    showMessage(errorBox, "Your sign-in has expired. Sign in again to go on.", "warn");
  } else if (params.get("reason") === "signed-out") {
    showMessage(errorBox, "You are signed out.", "ok");
  }
  idInput.focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!idInput.value.trim() || !keyInput.value.trim()) {
    showMessage(errorBox, "Enter the account id and the account key.", "error");
    (idInput.value.trim() ? keyInput : idInput).focus();
    return;
  }
  submit.disabled = true;
  submit.textContent = "Signing in…";
  try {
    const { accountId, token } = await fetchToken(idInput.value, keyInput.value);
    saveAuth(accountId, token);
    keyInput.value = "";
    location.replace(next);
  } catch (err) {
    showMessage(errorBox, errorText(err), "error");
    keyInput.select();
    keyInput.focus();
  } finally {
    submit.disabled = false;
    submit.textContent = "Sign in";
  }
});
