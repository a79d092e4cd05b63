// ESLint flat config for the frontend extension (web/js). Run from the repo root:
//   npm install --no-save --no-audit --no-fund eslint@9 @eslint/js@9 globals@15 && npx eslint web/js
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/**", ".cache/**", ".venv/**"] },
  js.configs.recommended,
  {
    files: ["web/js/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    rules: {
      "no-unused-vars": ["error", { args: "none" }],
      eqeqeq: ["error", "always"],
      "no-var": "error",
      "prefer-const": "error",
    },
  },
];
