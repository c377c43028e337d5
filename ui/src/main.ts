import './styles.css';
import { App } from './app';
import { loadBackend } from './backend';

const backend = await loadBackend();
const app = new App(backend, await backend.startup());
document.body.append(app.element);
await app.start();
