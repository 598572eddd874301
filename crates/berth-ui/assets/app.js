import './api.js';
import './live.js';
import './charts.js';
import './term.js';
import './pages.js';
import './container.js';
