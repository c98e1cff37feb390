/**
 * AgentKit's front-end persistence client, `threadsApi` and `messagesApi` from its
 * frontend/services/api.ts, rewritten as plain JavaScript (types dropped, calls
 * unchanged) so Node.js 20 runs it with its built-in fetch. The base URL is read the
 * way AgentKit reads it. Left out: `messagesApi.updateInterrupted`, which calls a route
 * outside the eight of the thread API (PATCH /api/messages/{id}/interrupted).
 */

const API_BASE_URL = process.env.NEXT_PUBLIC_API_URL || 'http://localhost:8000';

// The thread calls: each reads the answer with response.json(), as the app does.
export const threadsApi = {
  create: async (data) => {
    const response = await fetch(`${API_BASE_URL}/api/threads`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(data),
    });

    if (!response.ok) {
      throw new Error(`Failed to create thread: ${response.statusText}`);
    }

    return response.json();
  },

  list: async (limit = 50, offset = 0) => {
    const response = await fetch(
      `${API_BASE_URL}/api/threads?limit=${limit}&offset=${offset}`
    );

    if (!response.ok) {
      throw new Error(`Failed to list threads: ${response.statusText}`);
    }

    return response.json();
  },

  get: async (threadId) => {
    const response = await fetch(`${API_BASE_URL}/api/threads/${threadId}`);

    if (!response.ok) {
      throw new Error(`Failed to get thread: ${response.statusText}`);
    }

    return response.json();
  },

  update: async (threadId, data) => {
    const response = await fetch(`${API_BASE_URL}/api/threads/${threadId}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(data),
    });

    if (!response.ok) {
      throw new Error(`Failed to update thread: ${response.statusText}`);
    }

    return response.json();
  },

  delete: async (threadId) => {
    const response = await fetch(`${API_BASE_URL}/api/threads/${threadId}`, {
      method: 'DELETE',
    });

    if (!response.ok) {
      throw new Error(`Failed to delete thread: ${response.statusText}`);
    }

    return response.json();
  },
};

// The message calls.
export const messagesApi = {
  create: async (threadId, data) => {
    const response = await fetch(
      `${API_BASE_URL}/api/threads/${threadId}/messages`,
      {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(data),
      }
    );

    if (!response.ok) {
      throw new Error(`Failed to create message: ${response.statusText}`);
    }

    return response.json();
  },

  list: async (threadId) => {
    const response = await fetch(
      `${API_BASE_URL}/api/threads/${threadId}/messages`
    );

    if (!response.ok) {
      throw new Error(`Failed to list messages: ${response.statusText}`);
    }

    return response.json();
  },

  delete: async (messageId) => {
    const response = await fetch(`${API_BASE_URL}/api/messages/${messageId}`, {
      method: 'DELETE',
    });

    if (!response.ok) {
      throw new Error(`Failed to delete message: ${response.statusText}`);
    }

    return response.json();
  },
};
