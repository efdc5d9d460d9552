/* Riddle of the Sphinx: single player, with ai.chat and ai.stream.
 * The model is asked for a riddle in a strict format; when a reply does not
 * follow it (small or demo models), a built-in riddle keeps the game going. */
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const RIDDLE_PROMPT =
    "You are the Sphinx of Thebes. Invent one short, fair riddle with a one- or two-word answer. " +
    "Reply in exactly this format and nothing else:\nRIDDLE: <the riddle>\nANSWER: <the answer>\nHINT: <a short hint>";
  const JUDGE_PROMPT =
    "You are the Sphinx judging an answer to your riddle. Accept synonyms and small misspellings. " +
    "Start your reply with the single word CORRECT or WRONG, then one short sentence in character.";
  const state = { ai: null, current: null, score: 0, streak: 0, lives: 3, used: new Set(), hinted: false };

  const normalize = (text) => text.toLowerCase().replace(/[^a-z0-9 ]/g, "").replace(/\s+/g, " ").trim();

  function updateScores() {
    $("score").textContent = state.score;
    $("streak").textContent = state.streak;
    $("lives").textContent = "❤".repeat(state.lives) || "☠";
  }

  function builtin() {
    const pool = window.BUILTIN_RIDDLES.filter((r) => !state.used.has(r.riddle));
    const list = pool.length ? pool : window.BUILTIN_RIDDLES;
    const pick = list[Math.floor(Math.random() * list.length)];
    state.used.add(pick.riddle);
    return { ...pick, source: "builtin" };
  }

  function parseRiddle(text) {
    const riddle = text.match(/RIDDLE:\s*(.+)/i);
    const answer = text.match(/ANSWER:\s*(.+)/i);
    if (!riddle || !answer) return null;
    const hint = text.match(/HINT:\s*(.+)/i);
    const main = normalize(answer[1]);
    if (!main || main.split(" ").length > 3) return null;
    return { riddle: riddle[1].trim(), answers: [main, main.replace(/^(a|an|the) /, "")], hint: hint ? hint[1].trim() : "Think again.", source: "model" };
  }

  function setPlaying(playing) {
    $("answer").disabled = !playing;
    $("submit").disabled = !playing;
    $("hint").disabled = !playing || state.hinted;
    $("next").disabled = playing;
    if (playing) $("answer").focus();
  }

  function verdict(text, kind) {
    $("verdict").textContent = text;
    $("verdict").className = `verdict ${kind || ""}`;
  }

  async function typeOut(text) {
    $("riddle").textContent = "";
    for (const word of text.split(/(\s+)/)) {
      $("riddle").textContent += word;
      await new Promise((r) => setTimeout(r, 35));
    }
  }

  async function nextRiddle() {
    if (state.lives <= 0) {
      Object.assign(state, { score: 0, streak: 0, lives: 3 });
      updateScores();
    }
    $("next").disabled = true;
    verdict("The Sphinx ponders…");
    state.hinted = false;
    let riddle = null;
    try {
      state.ai = state.ai || (await VGP.connect());
      const reply = await state.ai.chat({ system: RIDDLE_PROMPT, messages: [{ role: "user", content: "Pose your riddle." }], max_tokens: 200, temperature: 1 });
      riddle = parseRiddle(reply.content);
    } catch (error) {
      verdict(`${error.code || "ERROR"}: ${error.message}`, "bad");
    }
    state.current = riddle || builtin();
    if (!$("verdict").classList.contains("bad")) verdict("");
    await typeOut(state.current.riddle);
    setPlaying(true);
  }

  async function judge(answer) {
    const guess = normalize(answer);
    const locally = state.current.answers.some((a) => guess === normalize(a) || guess.split(" ").includes(normalize(a)));
    if (locally) return { correct: true, line: "Correct. You may pass… for now." };
    // Let the model judge near misses, streaming its words as they come.
    let text = "";
    try {
      const stream = state.ai.stream({
        system: JUDGE_PROMPT,
        messages: [{ role: "user", content: `Riddle: ${state.current.riddle}\nExpected answer: ${state.current.answers[0]}\nPlayer's answer: ${answer}` }],
        max_tokens: 80,
      });
      for await (const chunk of stream) {
        text += chunk;
        if (/^\s*(CORRECT|WRONG)/i.test(text)) verdict(text.replace(/^\s*(CORRECT|WRONG)[\s.:!-]*/i, ""));
      }
    } catch (_) {
      text = "";
    }
    const word = text.trim().match(/^(CORRECT|WRONG)/i);
    if (!word) return { correct: false, line: `Wrong! The answer was “${state.current.answers[0]}”.` };
    const line = text.trim().replace(/^(CORRECT|WRONG)[\s.:!-]*/i, "") || (word[1].toUpperCase() === "CORRECT" ? "Correct." : "Wrong!");
    return { correct: word[1].toUpperCase() === "CORRECT", line: word[1].toUpperCase() === "CORRECT" ? line : `${line} (It was “${state.current.answers[0]}”.)` };
  }

  async function answer(event) {
    event.preventDefault();
    const text = $("answer").value.trim();
    if (!text) return;
    setPlaying(false);
    $("next").disabled = true;
    verdict("The Sphinx considers your answer…");
    const result = await judge(text);
    $("answer").value = "";
    if (result.correct) {
      state.streak += 1;
      state.score += state.hinted ? 1 : 1 + Math.min(state.streak, 3);
      verdict(result.line, "good");
    } else {
      state.streak = 0;
      state.lives -= 1;
      $("riddle").classList.add("shake");
      setTimeout(() => $("riddle").classList.remove("shake"), 400);
      verdict(state.lives > 0 ? result.line : `${result.line} The Sphinx devours you. Final score: ${state.score}.`, "bad");
    }
    updateScores();
    $("next").textContent = state.lives > 0 ? "Next riddle" : "Try again";
    $("next").disabled = false;
  }

  $("next").addEventListener("click", nextRiddle);
  $("answer-form").addEventListener("submit", answer);
  $("hint").addEventListener("click", () => {
    state.hinted = true;
    state.score = Math.max(0, state.score - 1);
    updateScores();
    $("hint").disabled = true;
    verdict(`Hint: ${state.current.hint}`);
  });
  updateScores();
})();
