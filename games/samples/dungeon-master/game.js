/* Dungeon Master: a cooperative text adventure on a server-side conversation.
 * Every player's turn and the DM's narration live in one conversation on the
 * platform. The owner invites friends by username; they join with its id (the
 * room code), and everyone at the table sees the others' actions and the DM's
 * narration as it streams. Turns are answered one at a time, in order. */
(function () {
  "use strict";

  const DM_PROMPT = [
    "You are the Dungeon Master of a cooperative fantasy adventure for one to four players.",
    "Players write their actions as 'Name (Class): action'. A roll looks like '[rolled 17 on d20]':",
    "1 is a disaster, 2-9 a failure, 10-14 a partial success, 15-19 a success and 20 a triumph.",
    "Narrate in the second person, vividly but briefly (two short paragraphs at most),",
    "give every player in the party a moment, keep track of the scene, and end with 'What do you do?'",
  ].join(" ");
  const POLL_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const state = { ai: null, convo: null, hero: null, roll: null, busy: false, tokens: 0, seen: 0, hp: 10, maxHp: 10 };
  const others = new Map(); // another player's turn id -> its narration entry

  /* --- Rendering ----------------------------------------------------------- */

  function addEntry(kind, html) {
    const div = document.createElement("div");
    div.className = `entry ${kind}`;
    if (html !== undefined) div.innerHTML = html;
    $("log").appendChild(div);
    $("log").scrollTop = $("log").scrollHeight;
    return div;
  }

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function paragraphs(text) {
    return text
      .split(/\n{2,}/)
      .map((p) => `<p>${escapeHtml(p.trim()).replace(/\n/g, "<br>")}</p>`)
      .join("");
  }

  function playerHtml(content) {
    const match = content.match(/^(.{1,40}?) \(([^)]{1,20})\): ([\s\S]*)$/);
    const who = match ? `${match[1]}` : "Someone";
    let action = match ? match[3] : content;
    let roll = "";
    const rolled = action.match(/^\[rolled (\d+) on d20\]\s*/);
    if (rolled) {
      roll = `<span class="roll-tag">🎲 ${rolled[1]}</span>`;
      action = action.slice(rolled[0].length);
    }
    return `<span class="who">${escapeHtml(who)}</span>${roll}${escapeHtml(action)}`;
  }

  function renderMessage(message) {
    if (message.role === "assistant") addEntry("dm", paragraphs(message.content));
    else addEntry("player", playerHtml(message.content));
  }

  function renderParty() {
    const members = new Map();
    members.set(state.hero.name, state.hero.klass);
    for (const m of state.convo.history()) {
      const match = m.role === "user" && m.content.match(/^(.{1,40}?) \(([^)]{1,20})\): /);
      if (match) members.set(match[1], match[2]);
    }
    $("party").innerHTML = [...members]
      .map(([name, klass]) => `<li class="${name === state.hero.name ? "you" : ""}">${escapeHtml(name)} <span class="muted">· ${escapeHtml(klass)}</span></li>`)
      .join("");
  }

  function showError(error) {
    const text = error && error.code ? `${error.code}: ${error.message}` : String(error);
    addEntry("error", escapeHtml(text));
  }

  async function refreshUsage() {
    try {
      const usage = await state.ai.usage();
      const left = usage.remaining && usage.remaining.today;
      $("stat-left").textContent = left == null ? "unlimited" : left.toLocaleString("en-US");
    } catch (_) {
      $("stat-left").textContent = "—";
    }
  }

  /* --- Dice ------------------------------------------------------------------ */

  function rollD20() {
    if (state.busy) return;
    const die = $("die");
    const result = 1 + Math.floor(Math.random() * 20);
    die.classList.remove("crit", "fumble", "rolling");
    void die.offsetWidth; // restart the animation
    die.classList.add("rolling");
    const started = performance.now();
    const tick = () => {
      const t = performance.now() - started;
      if (t < 850) {
        die.firstElementChild.textContent = 1 + Math.floor(Math.random() * 20);
        setTimeout(tick, 40 + t / 12);
        return;
      }
      die.firstElementChild.textContent = result;
      die.classList.remove("rolling");
      if (result === 20) die.classList.add("crit");
      if (result === 1) die.classList.add("fumble");
      state.roll = result;
      $("roll-chip").hidden = false;
      $("roll-chip").textContent = `d20: ${result} ✕`;
      $("action").focus();
    };
    tick();
  }

  function clearRoll() {
    state.roll = null;
    $("roll-chip").hidden = true;
  }

  /* --- Turns ----------------------------------------------------------------- */

  function setBusy(busy) {
    state.busy = busy;
    for (const el of document.querySelectorAll("#action-form button, #action")) el.disabled = busy;
  }

  async function act(text) {
    if (state.busy || !text.trim()) return;
    const roll = state.roll ? `[rolled ${state.roll} on d20] ` : "";
    const content = `${state.hero.name} (${state.hero.klass}): ${roll}${text.trim()}`;
    clearRoll();
    $("action").value = "";
    addEntry("player", playerHtml(content));
    await narrate(content);
  }

  async function narrate(content) {
    setBusy(true);
    const entry = addEntry("dm cursor", "");
    const stream = state.convo.send(content, { stream: true });
    try {
      for await (const chunk of stream) {
        void chunk;
        entry.innerHTML = paragraphs(stream.text);
        $("log").scrollTop = $("log").scrollHeight;
      }
      if (stream.usage) state.tokens += stream.usage.total_tokens || 0;
      $("stat-tokens").textContent = state.tokens.toLocaleString("en-US");
      if (stream.model) $("stat-model").textContent = stream.model;
    } catch (error) {
      entry.remove();
      showError(error);
    } finally {
      entry.classList.remove("cursor");
      state.seen = state.convo.history().length;
      renderParty();
      setBusy(false);
      refreshUsage();
      $("action").focus();
    }
  }

  // Other players' turns, live: their action, then the DM's narration as it streams.
  function onRoom(event) {
    if (event.type === "player_joined") {
      addEntry("system", `${escapeHtml(event.author)} takes a seat at the table.`);
    } else if (event.type === "room_action") {
      addEntry("player", playerHtml(event.content));
      others.set(event.turn, addEntry("dm cursor", ""));
    } else if (event.type === "stream_chunk") {
      const entry = others.get(event.turn);
      if (entry) entry.innerHTML = paragraphs(event.text);
      $("log").scrollTop = $("log").scrollHeight;
    } else if (event.type === "stream_end" || event.type === "error") {
      const entry = others.get(event.turn);
      others.delete(event.turn);
      if (entry) entry.classList.remove("cursor");
      if (!event.stored) {
        if (entry) entry.remove();
        addEntry("system", `${escapeHtml(event.author || "A player")}'s turn was cut short.`);
      }
      if (!state.busy) state.seen = state.convo.history().length;
      renderParty();
    } else if (event.type === "room_closed") {
      addEntry("system", "The room's owner has closed this adventure.");
    }
  }

  // Without a live room (no WebSocket), other players' turns are picked up
  // from the shared history while idle.
  async function poll() {
    if (state.convo && !state.convo.live && !state.busy && !document.hidden) {
      try {
        const history = await state.convo.refresh();
        if (!state.busy && history.length > state.seen) {
          history.slice(state.seen).forEach(renderMessage);
          state.seen = history.length;
          renderParty();
        }
      } catch (_) {
        /* the room may not be shared yet; keep playing */
      }
    }
    setTimeout(poll, POLL_MS);
  }

  /* --- Starting -------------------------------------------------------------- */

  function readHero() {
    const name = $("hero-name").value.trim() || "Aria the Bold";
    return { name: name.replace(/[()]/g, ""), klass: $("hero-class").value };
  }

  function enterTable() {
    $("lobby").hidden = true;
    $("table").hidden = false;
    $("hero-title").textContent = state.hero.name;
    $("hero-sub").textContent = `Level 1 ${state.hero.klass}`;
    $("share-code").value = state.convo.id;
    state.convo.onRoom(onRoom);
    $("stat-model").textContent = state.convo.model || state.ai.defaultModel || "default";
    renderParty();
    refreshUsage();
    setTimeout(poll, POLL_MS);
  }

  async function start(join) {
    $("lobby-error").textContent = "";
    for (const b of document.querySelectorAll("#lobby button")) b.disabled = true;
    try {
      state.ai = state.ai || (await VGP.connect());
      state.hero = readHero();
      if (join) {
        const code = $("room-code").value.trim();
        if (!code) throw new VGP.VGPError("INVALID_REQUEST", "Enter the room code a friend shared.");
        state.convo = await state.ai.join(code);
        enterTable();
        addEntry("system", `You join the party in room ${escapeHtml(code.slice(0, 8))}…`);
        state.convo.history().forEach(renderMessage);
        state.seen = state.convo.history().length;
        await narrate(`${state.hero.name} (${state.hero.klass}): I join the party.`);
      } else {
        state.convo = await state.ai.conversation({ system: DM_PROMPT, history_limit: 24 });
        enterTable();
        addEntry("system", "A new adventure begins…");
        await narrate(`${state.hero.name} (${state.hero.klass}): Begin the adventure. Set the opening scene.`);
      }
    } catch (error) {
      $("lobby").hidden = false;
      $("table").hidden = true;
      $("lobby-error").textContent = error.code === "NOT_FOUND"
        ? "No room with that code (or you were not invited to it)."
        : `${error.code || "ERROR"}: ${error.message}`;
    } finally {
      for (const b of document.querySelectorAll("#lobby button")) b.disabled = false;
    }
  }

  function setHp(value) {
    state.hp = Math.max(0, Math.min(state.maxHp, value));
    $("hp-fill").style.width = `${(100 * state.hp) / state.maxHp}%`;
    $("hp-text").textContent = `${state.hp} / ${state.maxHp}`;
  }

  $("new-game").addEventListener("click", () => start(false));
  $("join-game").addEventListener("click", () => start(true));
  $("room-code").addEventListener("keydown", (e) => e.key === "Enter" && start(true));
  // The sandbox has no `allow-forms`, so forms never submit: buttons and Enter do.
  $("send").addEventListener("click", () => act($("action").value));
  $("action").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    act($("action").value);
  });
  for (const b of document.querySelectorAll("[data-quick]")) {
    b.addEventListener("click", () => act(b.dataset.quick));
  }
  $("die").addEventListener("click", rollD20);
  $("die").addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && rollD20());
  $("roll-chip").addEventListener("click", clearRoll);
  $("hp-down").addEventListener("click", () => setHp(state.hp - 1));
  $("hp-up").addEventListener("click", () => setHp(state.hp + 1));
  async function invite() {
    const name = $("invite-name").value.trim();
    if (!name || !state.convo) return;
    $("invite-status").textContent = "…";
    try {
      await state.convo.invite(name);
      $("invite-name").value = "";
      $("invite-status").textContent = `${name} is invited: send them the room code.`;
    } catch (error) {
      $("invite-status").textContent =
        error.code === "FORBIDDEN" ? "Only the player who began the adventure can invite."
        : error.code === "NOT_FOUND" ? `No player "${name}" who can play this game.`
        : `${error.code}: ${error.message}`;
    }
  }
  $("invite-send").addEventListener("click", invite);
  $("invite-name").addEventListener("keydown", (e) => e.key === "Enter" && invite());
  $("copy-code").addEventListener("click", async () => {
    $("share-code").select();
    try {
      await navigator.clipboard.writeText($("share-code").value);
      $("copy-code").textContent = "Copied";
    } catch (_) {
      // The sandbox may forbid the clipboard API; the code is selected for Ctrl+C.
      $("copy-code").textContent = "Press Ctrl+C";
    }
    setTimeout(() => ($("copy-code").textContent = "Copy"), 1500);
  });
})();
