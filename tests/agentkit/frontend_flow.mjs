// What AgentKit's front end does with a conversation, through its own client module, in
// order, against the server at NEXT_PUBLIC_API_URL (run by test_frontend_client.py on a
// real `chad-memory serve` in local mode). Node's test runner reports each step.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { messagesApi, threadsApi } from './agentkit_api.mjs';

const THREAD_KEYS = ['agent_type', 'created_at', 'id', 'model', 'provider', 'title', 'updated_at'];
const MESSAGE_KEYS = [
  'artifact_data', 'content', 'created_at', 'id', 'metadata', 'role', 'thread_id',
];
const keys = (o) => Object.keys(o).sort();
const time = (s) => {
  const ms = Date.parse(s);
  assert.ok(!Number.isNaN(ms), `not an ISO 8601 timestamp: ${s}`);
  return ms;
};

const state = {};

test('create a thread: the default title, the three fields as sent, string id', async () => {
  const thread = await threadsApi.create({
    agent_type: 'chat', model: 'qwen:7b', provider: 'ollama',
  });
  assert.deepEqual(keys(thread), THREAD_KEYS);
  assert.equal(typeof thread.id, 'string');
  assert.equal(thread.title, 'New chat conversation');
  assert.equal(thread.agent_type, 'chat');
  assert.equal(thread.model, 'qwen:7b');
  assert.equal(thread.provider, 'ollama');
  assert.equal(time(thread.created_at), time(thread.updated_at));
  state.chat = thread;
});

test('create a second thread with a title', async () => {
  const thread = await threadsApi.create({
    agent_type: 'canvas', model: 'gemini-2.5-flash', provider: 'gemini', title: 'Canvas work',
  });
  assert.equal(thread.title, 'Canvas work');
  assert.notEqual(thread.id, state.chat.id);
  state.canvas = thread;
});

test('list: most recently updated first, limit and offset', async () => {
  const all = await threadsApi.list();
  assert.deepEqual(Object.keys(all), ['threads']);
  assert.deepEqual(all.threads.map((t) => t.id), [state.canvas.id, state.chat.id]);
  assert.deepEqual(all.threads[1], state.chat);
  const second = await threadsApi.list(1, 1);
  assert.deepEqual(second.threads.map((t) => t.id), [state.chat.id]);
  const past = await threadsApi.list(50, 2);
  assert.deepEqual(past, { threads: [] });
});

test('get a thread: the same thread as created', async () => {
  assert.deepEqual(await threadsApi.get(state.chat.id), state.chat);
});

test('rename: {id, title, updated_at}, and updated_at moves', async () => {
  const renamed = await threadsApi.update(state.chat.id, { title: 'Holiday plans' });
  assert.deepEqual(keys(renamed), ['id', 'title', 'updated_at']);
  assert.equal(renamed.id, state.chat.id);
  assert.equal(renamed.title, 'Holiday plans');
  assert.ok(time(renamed.updated_at) > time(state.chat.updated_at));
  const again = await threadsApi.get(state.chat.id);
  assert.equal(again.title, 'Holiday plans');
  assert.equal(again.created_at, state.chat.created_at);
  assert.equal(again.model, 'qwen:7b');
});

test('add messages: text, an artifact with metadata, and a reply', async () => {
  const id = state.chat.id;
  const hello = await messagesApi.create(id, { role: 'user', content: 'Hello' });
  assert.deepEqual(keys(hello), MESSAGE_KEYS);
  assert.equal(hello.thread_id, id);
  assert.equal(hello.role, 'user');
  assert.equal(hello.content, 'Hello');
  assert.equal(hello.artifact_data, null);
  const artifact = {
    type: 'code', language: 'python', title: 'Test Code', content: 'print("héllo")\n',
  };
  const code = await messagesApi.create(id, {
    role: 'assistant', content: 'Here is some code', artifact_data: artifact,
    metadata: { tokens: 12, nested: { ok: true } },
  });
  assert.deepEqual(code.artifact_data, artifact);
  assert.deepEqual(code.metadata, { tokens: 12, nested: { ok: true } });
  const thanks = await messagesApi.create(id, { role: 'user', content: 'Thanks 🙏' });
  assert.ok(time(hello.created_at) <= time(code.created_at));
  assert.ok(time(code.created_at) <= time(thanks.created_at));
  state.messages = [hello, code, thanks];
});

test("a message moves its thread's updated_at and the thread to the top", async () => {
  const thread = await threadsApi.get(state.chat.id);
  assert.equal(thread.updated_at, state.messages[2].created_at);
  const listed = await threadsApi.list();
  assert.deepEqual(listed.threads.map((t) => t.id), [state.chat.id, state.canvas.id]);
});

test('list messages: oldest first, each exactly as created', async () => {
  const listed = await messagesApi.list(state.chat.id);
  assert.deepEqual(Object.keys(listed), ['messages']);
  assert.deepEqual(listed.messages, state.messages);
  assert.deepEqual(await messagesApi.list(state.canvas.id), { messages: [] });
});

test('delete a message: {message}, gone from the list, a second delete fails', async () => {
  const gone = await messagesApi.delete(state.messages[1].id);
  assert.equal(typeof gone.message, 'string');
  const listed = await messagesApi.list(state.chat.id);
  assert.deepEqual(listed.messages.map((m) => m.id), [state.messages[0].id, state.messages[2].id]);
  await assert.rejects(messagesApi.delete(state.messages[1].id), {
    message: 'Failed to delete message: Not Found',
  });
});

test('delete the thread: its messages go with it, then it is not found', async () => {
  const gone = await threadsApi.delete(state.chat.id);
  assert.equal(typeof gone.message, 'string');
  await assert.rejects(threadsApi.get(state.chat.id), {
    message: 'Failed to get thread: Not Found',
  });
  await assert.rejects(messagesApi.list(state.chat.id), {
    message: 'Failed to list messages: Not Found',
  });
  await assert.rejects(messagesApi.delete(state.messages[0].id), {
    message: 'Failed to delete message: Not Found',
  });
  await assert.rejects(threadsApi.delete(state.chat.id), {
    message: 'Failed to delete thread: Not Found',
  });
  const listed = await threadsApi.list();
  assert.deepEqual(listed.threads.map((t) => t.id), [state.canvas.id]);
});

test('bad input is refused, and the front end sees the failure', async () => {
  await assert.rejects(threadsApi.create({ agent_type: 'chat' }), {
    message: 'Failed to create thread: Unprocessable Entity',
  });
  await assert.rejects(
    messagesApi.create(state.canvas.id, { role: 'robot', content: 'beep' }),
    { message: 'Failed to create message: Unprocessable Entity' },
  );
  assert.deepEqual(await messagesApi.list(state.canvas.id), { messages: [] });
});
